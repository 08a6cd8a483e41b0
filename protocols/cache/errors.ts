/** The peer did not answer (the header of a get, or a whole lookup) within the timeout; the caller's own signal gives its own error. */
export class CacheTimeoutError extends Error {
  override name = 'CacheTimeoutError';
}

/** The peer answered, but not by the protocol (bad framing, header, count, sizes, or a body of the wrong length). */
export class InvalidCacheResponseError extends Error {
  override name = 'InvalidCacheResponseError';
}

/** The peer does not have the blob asked for. */
export class BlobNotFoundError extends Error {
  override name = 'BlobNotFoundError';
}

/** No byte of a blob's body arrived for the idle timeout. */
export class CacheStallError extends Error {
  override name = 'CacheStallError';
}
