// What every protocol's client and handler need around a stream: a caller's signal bounded by a
// timeout, a promise raced against a signal, and telling a malformed answer from a failed stream.
import { setMaxListeners } from 'node:events';

/** lpStream's errors for bytes that are not well-formed messages (a reset stream is not one of them). */
const FRAMING_ERRORS = new Set(['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'InvalidMessageLengthError', 'UnexpectedEOFError', 'StreamBufferError']);

export function isFramingError(error: unknown): boolean {
  return FRAMING_ERRORS.has((error as Error | undefined)?.name ?? '');
}

/** The caller's signal bounded by a timeout: both, and the timeout alone (to tell which fired). */
export function bounded(callerSignal: AbortSignal | undefined, timeoutMs: number): { signal: AbortSignal; timeout: AbortSignal } {
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = callerSignal ? AbortSignal.any([callerSignal, timeout]) : timeout;
  // One signal serves every step of a call (dial, stream, reads): each adds a listener.
  setMaxListeners(Infinity, signal);
  return { signal, timeout };
}

/** `promise`, or the signal's reason if it aborts first. */
export async function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => {
      onAbort = () => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
    })]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
