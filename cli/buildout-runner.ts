// A buildout runner: a long-lived child of the node that runs `slapmesh buildout install` for one
// partition after another (node/buildout-runners.ts starts and feeds it). Started once, it saves the
// node a Node start and the loading of the engine for every deployment — most of a deployment's cost.
// One job at a time: the job owns the process's working directory. Its output goes to the job's log.
import { closeSync, openSync, writeSync } from 'node:fs';
import { primeSlapAnswers, type PrimedAnswer } from '../engine/recipes/slap-client.js';
import { installProfile } from './buildout/install.js';
import { CliError, type CliIo } from './io.js';

/** Parent → runner. */
export type RunnerRequest =
  | { type: 'run'; id: number; configFile: string; cwd: string; logFile: string; primed?: PrimedAnswer[] }
  | { type: 'cancel'; id: number; reason: string };

/** Runner → parent: `ready` once it listens, then one `done` per job, with the runner's resident memory (bytes). */
export type RunnerReply = { type: 'ready' } | { type: 'done'; id: number; ok: boolean; rss: number };

let current: { id: number; controller: AbortController } | undefined;
let leaving = false;

async function run(job: Extract<RunnerRequest, { type: 'run' }>): Promise<void> {
  const controller = new AbortController();
  current = { id: job.id, controller };
  const log = openSync(job.logFile, 'a');
  const write = (text: string) => void writeSync(log, text);
  let ok = false;
  const unprime = primeSlapAnswers(job.primed ?? []);
  try {
    process.chdir(job.cwd);
    const io: CliIo = { stdout: write, stderr: write, cwd: job.cwd, env: process.env, isTTY: false };
    await installProfile({ configFile: job.configFile, io, signal: controller.signal });
    ok = true;
  } catch (error) {
    // As `slapmesh buildout` prints it: one line for an expected failure, the stack for a bug.
    write(error instanceof CliError ? `slapmesh: ${error.message}\n` : `slapmesh: ${(error as Error).stack ?? String(error)}\n`);
  } finally {
    unprime();
    closeSync(log);
    current = undefined;
  }
  send({ type: 'done', id: job.id, ok, rss: process.memoryUsage.rss() });
  if (leaving) process.exit(0);
}

function send(reply: RunnerReply): void {
  if (process.connected) process.send!(reply);
}

process.on('message', (request: RunnerRequest) => {
  if (request.type === 'run' && !current) void run(request);
  else if (request.type === 'cancel' && current?.id === request.id) current.controller.abort(new Error(request.reason));
});

// The node is gone (stopped, or killed): the job in progress is stopped — the engine kills the commands it
// runs — and the runner leaves once it is cleaned up.
process.on('disconnect', () => {
  leaving = true;
  if (current) current.controller.abort(new Error('the node is gone'));
  else process.exit(0);
});

send({ type: 'ready' });
