/** The peer did not answer within the fetch's timeout (the caller's own signal gives its own error). */
export class InfoTimeoutError extends Error {
  override name = 'InfoTimeoutError';
}

/** The peer answered, but not with a valid advert of its own (bad framing, too large, refused advert). */
export class InvalidInfoResponseError extends Error {
  override name = 'InvalidInfoResponseError';
}
