// The cache protocol: signed index entries by key, and blobs by CID with an offset (design.md §5, §6).

export const CACHE_PROTOCOL = '/slapmesh/cache/1.1.0';
/** A request: `{"get": "<cid>", "offset": n, "acks": true}` (`acks` may be left out) or `{"lookup": "<key>"}`. */
export const MAX_CACHE_REQUEST_BYTES = 4 * 1024;
/** A lookup key: an opaque string of 1 to this many characters. */
export const MAX_LOOKUP_KEY_LENGTH = 256;
/** An answer's header: `{"size": n}`, `{"error": "not-found"}` or `{"entries": k}`. */
export const MAX_CACHE_HEADER_BYTES = 256;
/** At most this many entries in a lookup answer… */
export const MAX_LOOKUP_ENTRIES = 32;
/** …each one message of at most MAX_ENTRY_BYTES: a signed cache entry (its chunk hashes make it up to 1 MiB). */
export { MAX_ENTRY_BYTES } from '../../node/cache/entry.js';
/**
 * How much of a blob's body a client holds before it pauses the stream. Yamux keeps granting window while
 * the reader is paused until the window it already gave (up to 16 MiB by default) is used, so the stream's
 * own read buffer is raised to MAX_BODY_READ_BUFFER_BYTES to hold that without resetting the stream.
 */
export const BODY_HIGH_WATER_BYTES = 8 * 1024 * 1024;
export const MAX_BODY_READ_BUFFER_BYTES = 32 * 1024 * 1024;
/** The listener reads a blob from disk, and sends it, in pieces of this size. */
export const SEND_PIECE_BYTES = 1024 * 1024;
/**
 * A client that asked for `acks` says every this many bytes of a body how many it received, as a message
 * `{"received": n}`; the listener then sends from SEND_BUFFERS pieces' worth of buffers, each filled again
 * once what it held was received (protocols/cache/send-buffers.ts).
 */
export const ACK_EVERY_BYTES = SEND_PIECE_BYTES;
export const SEND_BUFFERS = 16;
/** An acknowledgement message. */
export const MAX_ACK_BYTES = 64;
/** Default bound of a lookup: dial, stream, answer. */
export const LOOKUP_TIMEOUT_MS = 5_000;
/** Default bound of a get until the header: dial, stream, request, header (the body has the idle timeout). */
export const GET_TIMEOUT_MS = 5_000;
/** A blob's body fails once no byte has moved for this long (either side), however long the whole takes. */
export const BODY_IDLE_TIMEOUT_MS = 10_000;
/** Bound of the handler's reading of a request and writing of its header (and of a lookup's entries). */
export const CACHE_HANDLER_TIMEOUT_MS = 5_000;
/** Concurrent cache streams per connection and direction: a few transfers and lookups at once. */
export const MAX_INBOUND_STREAMS = 16;
export const MAX_OUTBOUND_STREAMS = 16;
