// `slapmesh request REFERENCE RELEASE`: asks the mesh for an instance (or changes the one of that
// reference, as `slapos request` does) through the running node, which places it on the best peer.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { callControl } from '../../node/control.js';
import { CliError, EXIT_NOT_READY, EXIT_OK, type CliIo } from '../io.js';
import type { CommandContext } from '../main.js';
import { dataDirOf } from '../node/index.js';
import type { InstanceJson } from '../../node/instances.js';
import { printInstance } from '../instance/index.js';

export const DEFAULT_WAIT_SECONDS = 300;
/** Without --wait, placing (several peers may be asked in turn) takes at most this long. */
const PLACE_TIMEOUT_MS = 60_000;

interface RequestFlags {
  type?: string;
  param: string[];
  parametersFile?: string;
  peer?: string;
  state: string;
  wait?: boolean;
  timeout: string;
  json?: boolean;
}

export function registerRequest(program: Command, { io, setExit }: CommandContext): void {
  program.command('request')
    .description('request an instance of a release from the mesh (or update the one of that reference); prints its connection parameters')
    .argument('<reference>', 'the name of the instance, yours to choose')
    .argument('<release>', 'a profile (or a folder holding software.cfg), its URL, or the CID of a release')
    .option('--type <type>', 'software type (default: default)')
    .option('--param <key=value>', 'an instance parameter (repeatable)', (value: string, all: string[]) => [...all, value], [])
    .option('--parameters-file <file>', 'instance parameters as a JSON object (--param wins)')
    .option('--peer <peerId>', 'place it on this peer only')
    .option('--state <state>', 'started, stopped or destroyed', 'started')
    .option('--wait', 'wait until it is ready: published, and its promises pass (exit 2 if not in time)')
    .option('--timeout <seconds>', 'how long --wait waits', String(DEFAULT_WAIT_SECONDS))
    .option('--json', '{"reference", "owner", "host", "state", "status", "connection"} as one JSON line')
    .action(async (reference: string, release: string, flags: RequestFlags, command: Command) => {
      if (!['started', 'stopped', 'destroyed'].includes(flags.state)) throw new CliError(`--state must be started, stopped or destroyed, not ${JSON.stringify(flags.state)}`);
      const timeout = Number(flags.timeout);
      if (!(timeout > 0)) throw new CliError(`--timeout must be a number of seconds, not ${JSON.stringify(flags.timeout)}`);
      const local = resolve(io.cwd, release);
      const waitMs = flags.wait ? timeout * 1000 : 0;
      const answer = (await callControl(dataDirOf(command, io), 'request', {
        reference, release: existsSync(local) ? local : release, type: flags.type ?? 'default', parameters: parametersOf(flags, io),
        state: flags.state, waitMs, ...(flags.peer ? { peer: flags.peer } : {}),
      }, {
        idleTimeoutMs: waitMs + PLACE_TIMEOUT_MS,
        onEvent: (event) => {
          const { status, message } = event as { status: string; message?: string };
          if (io.isTTY && !flags.json) io.stderr(`${status}${message ? `: ${message}` : ''}\n`);
        },
      })) as { instance: InstanceJson; reached: boolean };
      printInstance(io, answer.instance, flags.json);
      if (answer.instance.status === 'failed') throw new CliError(`${reference} failed: ${answer.instance.message ?? 'no reason given'}`);
      if (flags.wait && !answer.reached) {
        io.stderr(`slapmesh: ${reference} is not ready after ${timeout} s: ${answer.instance.status}${answer.instance.message ? `: ${answer.instance.message}` : ''}\n`);
        setExit(EXIT_NOT_READY);
        return;
      }
      setExit(EXIT_OK);
    });
}

/** --parameters-file, then each --param on top. */
function parametersOf(flags: RequestFlags, io: CliIo): Record<string, unknown> {
  let parameters: Record<string, unknown> = {};
  if (flags.parametersFile) {
    const file = resolve(io.cwd, flags.parametersFile);
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new CliError(`cannot read --parameters-file ${file}: ${(error as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CliError(`--parameters-file ${file} must hold a JSON object`);
    parameters = parsed as Record<string, unknown>;
  }
  for (const pair of flags.param) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new CliError(`--param wants key=value, not ${JSON.stringify(pair)}`);
    parameters[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return parameters;
}
