// The info protocol: a peer's current signed advert, asked for directly (design.md §4, §5).
import { MAX_ADVERT_BYTES } from '../../node/advert.js';

export const INFO_PROTOCOL = '/slapmesh/info/1.0.0';
/** Each advert of an answer is one message. */
export const MAX_INFO_RESPONSE_BYTES = MAX_ADVERT_BYTES;
/** The request: `{"others": N}`. */
export const MAX_INFO_REQUEST_BYTES = 64;
/** At most this many adverts of other peers in one answer… */
export const MAX_OTHER_ADVERTS = 1_000;
/** …and at most this many bytes of them. */
export const MAX_OTHER_ADVERTS_BYTES = 4 * 1024 * 1024;
/** Default bound of a whole fetch: dial, stream, answer. */
export const INFO_TIMEOUT_MS = 5_000;
/** Bound of the handler's answer to one stream. */
export const INFO_HANDLER_TIMEOUT_MS = 5_000;
/** Concurrent info streams per connection and direction: one answer is enough, a few cover retries. */
export const MAX_INBOUND_STREAMS = 4;
export const MAX_OUTBOUND_STREAMS = 4;
