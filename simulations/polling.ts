// Waiting on nodes in other processes: nothing tells this process when their state changes, so scenarios
// ask their control sockets at a modest interval, always with a deadline.
import { setTimeout as delay } from 'node:timers/promises';

/** Resolves after `ms`, or rejects as soon as `signal` aborts (node:timers/promises, with the signal last). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(ms, undefined, signal ? { signal } : {});
}

export interface PollOptions {
  /** Gives up after this long (then resolves with false). */
  timeoutMs: number;
  intervalMs: number;
  signal?: AbortSignal;
}

/** Calls `probe` until it returns true (resolves true) or the time is up (resolves false); abort rejects. */
export async function pollUntil(probe: () => Promise<boolean> | boolean, options: PollOptions): Promise<boolean> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    options.signal?.throwIfAborted();
    const started = Date.now();
    if (await probe()) return true;
    if (Date.now() >= deadline) return false;
    // The interval counts from the start of a probe: a slow probe is not followed by a full wait.
    await sleep(Math.max(0, Math.min(options.intervalMs - (Date.now() - started), deadline - Date.now())), options.signal);
  }
}

/** What a call gives, or undefined when it fails (a node killed or busy a moment): polls try again later. */
export async function settled<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch {
    return undefined;
  }
}
