// The worker thread behind callSlapSync: makes the socket call while the recipe's thread waits.
import { runAsWorker } from 'synckit';
import { callSlap, SlapCallError, type SlapEndpoint, type WorkerAnswer } from './slap-client.js';

runAsWorker(async (endpoint: SlapEndpoint, method: string, params: unknown, timeoutMs: number): Promise<WorkerAnswer> => {
  try {
    return { result: await callSlap(endpoint, method, params, { timeoutMs }) };
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    return { error: { name: e.name, message: e.message, ...(e instanceof SlapCallError ? { remoteName: e.remoteName } : {}) } };
  }
});
