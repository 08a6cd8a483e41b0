/** The peer did not answer within the call's timeout (the caller's own signal gives its own error). */
export class InstanceTimeoutError extends Error {
  override name = 'InstanceTimeoutError';
}

/** The peer answered, but not by the protocol (bad framing, too large, not JSON, wrong fields or values). */
export class InvalidInstanceAnswerError extends Error {
  override name = 'InvalidInstanceAnswerError';
}

/** A call's arguments break the protocol's limits: refused before anything is sent. */
export class InvalidInstanceRequestError extends RangeError {
  override name = 'InvalidInstanceRequestError';
}
