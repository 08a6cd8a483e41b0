// The info protocol: a peer's current signed advert, asked for directly (design.md §4, §5).
import { MAX_ADVERT_BYTES } from '../../node/advert.js';

export const INFO_PROTOCOL = '/slapmesh/info/1.0.0';
/** The one message of an answer is a signed advert. */
export const MAX_INFO_RESPONSE_BYTES = MAX_ADVERT_BYTES;
/** Default bound of a whole fetch: dial, stream, answer. */
export const INFO_TIMEOUT_MS = 5_000;
/** Bound of the handler's answer to one stream. */
export const INFO_HANDLER_TIMEOUT_MS = 5_000;
/** Concurrent info streams per connection and direction: one answer is enough, a few cover retries. */
export const MAX_INBOUND_STREAMS = 4;
export const MAX_OUTBOUND_STREAMS = 4;
