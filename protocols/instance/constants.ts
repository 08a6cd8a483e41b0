// The instance protocol: owners place and change their instances on hosts, hosts report back to owners
// (design.md §5, §7; docs/instances.md).

export const INSTANCE_PROTOCOL = '/slapmesh/instance/2.0.0';
/** A request: one JSON message in a frame (session.ts). */
export const MAX_INSTANCE_REQUEST_BYTES = 256 * 1024;
/** An answer: one JSON message in a frame (a `list` of many instances is the largest). */
export const MAX_INSTANCE_ANSWER_BYTES = 1024 * 1024;
/** A reference: 1 to this many printable characters (code points). */
export const MAX_REFERENCE_LENGTH = 256;
/** A release: its bundle's CID, canonical form, at most this many characters. */
export const MAX_RELEASE_LENGTH = 128;
/** A software type: 1 to this many of [A-Za-z0-9._-]. */
export const MAX_TYPE_LENGTH = 64;
/** Instance parameters: a JSON object of at most this many bytes serialized… */
export const MAX_PARAMETERS_BYTES = 64 * 1024;
/** …nested at most this deep (a deeper value is refused before it costs a deep recursion). */
export const MAX_PARAMETERS_DEPTH = 32;
/** Connection parameters: an object of strings, at most this many bytes serialized. */
export const MAX_CONNECTION_BYTES = 64 * 1024;
/** A connection parameter's name: 1 to this many printable characters. */
export const MAX_CONNECTION_KEY_LENGTH = 256;
/** An instance status (`ready`, `error`…): 1 to this many of [A-Za-z0-9._-]. */
export const MAX_STATUS_LENGTH = 32;
/** A status message, and a refusal's reason: at most this many bytes of UTF-8 text. */
export const MAX_MESSAGE_BYTES = 4 * 1024;
/** At most this many instances in one `renew` (and in its `unknown` answer). */
export const MAX_RENEW_INSTANCES = 1_000;
/** Default bound of a whole call: dial, stream, request, answer. */
export const INSTANCE_TIMEOUT_MS = 10_000;
/**
 * Bound of the handler's reading of a request and of the service's work on it (then the handler answers
 * `busy`); writing the answer has this bound again. Shorter than INSTANCE_TIMEOUT_MS, so that a slow
 * service gives its caller a reason rather than a timeout.
 */
export const INSTANCE_HANDLER_TIMEOUT_MS = 5_000;
/**
 * Instance streams per connection and direction. A node opens one per connection and keeps it (session.ts);
 * more come only while one is being replaced.
 */
export const MAX_INBOUND_STREAMS = 8;
export const MAX_OUTBOUND_STREAMS = 8;
/** Requests of one session the handler works on at once; it reads no more until one is answered. */
export const MAX_SESSION_REQUESTS = 64;
/** A session with no call in progress for this long is closed by the node that opened it. */
export const SESSION_IDLE_MS = 30_000;
