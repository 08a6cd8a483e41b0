// Deploying an instance into its partition (docs/instances.md, "Deployment"): the node writes the
// partition's buildout.cfg — the release's instance profile for the software type, and the
// [slap-connection] section that says how to reach the node — and has one of the process's buildout
// runners (child processes: buildout-runners.ts says why) install it. Services are not started here: the
// supervisor starts what the profile left in etc/service and etc/run.
import {
  appendFileSync, chmodSync, closeSync, existsSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { buildoutRunners } from './buildout-runners.js';
import type { Logger } from './log.js';
import type { PartitionParameters } from './partition-socket.js';
import type { RequestedState } from './store.js';

/** An instance profile is offline and small: longer than this, it is stuck. */
export const DEPLOY_TIMEOUT_MS = 10 * 60_000;
/** After a timeout or an abort, the buildout has this long to clean up before its runner is killed. */
export const DEPLOY_KILL_GRACE_MS = 5_000;
/** How much of the end of the log the failure message is taken from. */
const LOG_TAIL_BYTES = 16 * 1024;
/** Lines of the log a failure message keeps. */
const MESSAGE_LINES = 8;
/** The log is started afresh (the old one kept as `.1`) once it is this big. */
const LOG_ROTATE_BYTES = 4 << 20;

export interface DeployInit {
  /** The partition's folder: the buildout directory. */
  folder: string;
  partitionId: number;
  /** The built release's directory, holding instance.cfg and instance-<type>.cfg. */
  softwareRoot: string;
  /** The software type (default `default`). */
  type?: string;
  requestedState: RequestedState;
  /** The host's PeerId. */
  computerId: string;
  releaseCid: string;
  /** The partition's secret, which the partition socket asks for. */
  token: string;
  /** The partition socket (`<folder>/.slapmesh/slap.sock`). */
  socketPath: string;
  /** The socket's answer to `parameters`, when the node has it at hand: given with the job, it is not asked for. */
  parameters?: PartitionParameters;
  signal: AbortSignal;
  /** Default DEPLOY_TIMEOUT_MS. */
  timeoutMs?: number;
  log: Logger;
}

export interface DeployResult {
  ok: true;
  /** The instance profile that ran. */
  profile: string;
  /** The partition's buildout.cfg. */
  config: string;
  /** Where the buildout's output is appended. */
  logFile: string;
}

/** The release has no instance profile for the type. */
export class ProfileNotFoundError extends Error {
  override name = 'ProfileNotFoundError';
}

/** The instance profile failed, timed out or was stopped; the message is the end of its output. */
export class DeployError extends Error {
  override name = 'DeployError';
  constructor(message: string, readonly reason: 'failed' | 'timeout' | 'aborted', readonly logFile: string) {
    super(message);
  }
}

/** `instance-<type>.cfg` of the release when it exists, else `instance.cfg`. */
export function instanceProfile(softwareRoot: string, type = 'default'): string {
  const typed = join(resolve(softwareRoot), `instance-${type}.cfg`);
  const plain = join(resolve(softwareRoot), 'instance.cfg');
  // A type is a name, not a path: `instance-../x.cfg` must not escape the release.
  if (!/[/\\]/.test(type) && existsSync(typed)) return typed;
  if (existsSync(plain)) return plain;
  throw new ProfileNotFoundError(`the release in ${softwareRoot} has no instance profile for software type ${type}: neither ${typed} nor ${plain} exists`);
}

/** Starts the buildout runners deployments run on, ahead of the first (node/buildout-runners.ts prepare()). */
export function prepareDeployments(): void {
  buildoutRunners().prepare();
}

/** Runs the instance profile of the software type in the partition; rejects with DeployError or ProfileNotFoundError. */
export async function deployInstance(init: DeployInit): Promise<DeployResult> {
  const folder = resolve(init.folder);
  const type = init.type || 'default';
  const profile = instanceProfile(init.softwareRoot, type);
  const config = writeBuildoutConfig(folder, profile, init);
  const logFile = join(folder, '.slapmesh', 'log', 'buildout.log');
  mkdirSync(dirname(logFile), { recursive: true });
  rotate(logFile);
  appendFileSync(logFile, `\n--- ${new Date().toISOString()} slappart${init.partitionId}: software type ${type}, ${profile}\n`);
  const start = statSync(logFile).size;
  init.log.debug(`slappart${init.partitionId}: running ${profile}`);
  const outcome = await buildoutRunners().run({
    configFile: config, cwd: folder, logFile, signal: init.signal,
    timeoutMs: init.timeoutMs ?? DEPLOY_TIMEOUT_MS, killGraceMs: DEPLOY_KILL_GRACE_MS,
    ...(init.parameters ? { primed: [{ socket: resolve(init.socketPath), token: init.token, method: 'parameters', result: init.parameters }] } : {}),
  });
  if (outcome.message) appendFileSync(logFile, `${outcome.message}\n`);
  if (outcome.reason === 'ok') return { ok: true, profile, config, logFile };
  const output = lastMeaningfulLines(readFrom(logFile, start));
  const why = outcome.reason === 'timeout'
    ? `the instance profile did not finish within ${(init.timeoutMs ?? DEPLOY_TIMEOUT_MS) / 1000} s`
    : outcome.reason === 'aborted' ? `deployment stopped: ${reasonOf(init.signal)}` : output ? '' : 'the buildout failed';
  throw new DeployError([why, output].filter(Boolean).join('\n'), outcome.reason, logFile);
}

function reasonOf(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : String(reason ?? 'aborted');
}

// ---- buildout.cfg ----

/** Buildout substitutes `${`: a value given literally escapes it (SlapOS fork: `$${`). */
const literal = (value: string) => value.replaceAll('${', '$${');

function connectionOptions(folder: string, init: DeployInit): [string, string][] {
  return [
    ['computer-id', init.computerId],
    ['partition-id', `slappart${init.partitionId}`],
    ['software-release-url', init.releaseCid],
    ['server-url', `unix:${resolve(init.socketPath)}`],
    ['partition-token', init.token],
    ['requested-state', init.requestedState],
    ['key-file', join(folder, '.slapmesh', 'key.pem')],
    ['cert-file', join(folder, '.slapmesh', 'cert.pem')],
  ];
}

/** Writes `<folder>/buildout.cfg` atomically (and the key and cert files SlapOS profiles expect). */
function writeBuildoutConfig(folder: string, profile: string, init: DeployInit): string {
  const options = connectionOptions(folder, init);
  for (const [key, value] of [['folder', folder], ['profile', profile], ...options] as const) {
    if (/[\r\n]/.test(value)) throw new TypeError(`${key} holds a line break: ${JSON.stringify(value)}`);
  }
  mkdirSync(join(folder, '.slapmesh'), { recursive: true, mode: 0o700 });
  for (const file of ['key.pem', 'cert.pem']) {
    // Present, as SlapOS profiles pass them along; unused: the token authenticates the partition.
    const path = join(folder, '.slapmesh', file);
    writeFileSync(path, '', { flag: 'a', mode: 0o600 });
    chmodSync(path, 0o600);
  }
  const section = (name: string, underscores: boolean) => [
    `[${name}]`,
    ...options.map(([key, value]) => `${underscores ? key.replaceAll('-', '_') : key} = ${literal(value)}`),
  ];
  const text = [
    `# Written by the slapmesh node for slappart${init.partitionId} at each deployment: the release's instance`,
    '# profile, and how the instance reaches the node (docs/instances.md).',
    '[buildout]',
    `extends = ${literal(profile)}`,
    `directory = ${literal(folder)}`,
    '',
    ...section('slap-connection', false),
    '',
    ...section('slap_connection', true),
    '',
  ].join('\n');
  const path = join(folder, 'buildout.cfg');
  const partial = `${path}.${process.pid}.part`;
  try {
    // The token is in it: only the partition's owner reads it.
    writeFileSync(partial, text, { mode: 0o600 });
    renameSync(partial, path);
  } finally {
    rmSync(partial, { force: true });
  }
  return path;
}

// ---- the log ----

/** A log past LOG_ROTATE_BYTES becomes `<log>.1` (replacing the previous one): a partition redeploys often. */
function rotate(path: string): void {
  if (existsSync(path) && statSync(path).size > LOG_ROTATE_BYTES) renameSync(path, `${path}.1`);
}

/** The log from `offset` (this run's output), at most its last LOG_TAIL_BYTES. */
function readFrom(path: string, offset: number): string {
  const size = statSync(path).size;
  const start = Math.max(offset, size - LOG_TAIL_BYTES);
  const buffer = Buffer.alloc(Math.max(0, size - start));
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buffer, 0, buffer.length, start);
  } finally {
    closeSync(fd);
  }
  return buffer.toString('utf8');
}

/** Lines of `slapmesh buildout install` that say nothing about a failure. */
const PROGRESS = [/^(Installing|Updating|Uninstalling) \S+\.$/, /^ {2}\S+: done in [\d.]+ s$/, /^Nothing changed\.$/, /^\s*\(full log: .*\)$/];

/** The last lines that say something: not blank, not progress (`Installing x.`), not where the part logs are. */
export function lastMeaningfulLines(output: string, count = MESSAGE_LINES): string {
  const lines = output.split('\n')
    .map((line) => line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/^.*\r/, '').trimEnd())
    .filter((line) => line.trim() && !PROGRESS.some((pattern) => pattern.test(line)))
    .map((line) => line.replace(/^slapmesh: /, ''));
  return lines.slice(-count).join('\n');
}
