// `slapmesh supply RELEASE`: the running node makes a release available — from its own cache, a trusted
// peer's artifact, or a build — and this prints its CID and where it came from.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { callControl } from '../../node/control.js';
import type { SupplyResult } from '../../node/releases.js';
import { EXIT_OK, type CliIo } from '../io.js';
import type { CommandContext } from '../main.js';
import { dataDirOf } from '../node/index.js';

/** A build prints lines often; one silent for this long is stuck (or the node is gone). */
export const SUPPLY_IDLE_TIMEOUT_MS = 30 * 60_000;

type SupplyAnswer = Omit<SupplyResult, 'path'>;
type ProgressEvent = { type: string; part: string; line?: string; seconds?: number; error?: string };

export function registerSupply(program: Command, { io, setExit }: CommandContext): void {
  program.command('supply')
    .description('make a release available on the running node: from its cache, a trusted peer, or a build')
    .argument('<release>', 'a profile (or a folder holding software.cfg), or the CID of a release')
    .option('--json', '{"cid", "name", "source", "peer"?, "seconds"} as one JSON line')
    .action(async (release: string, flags: { json?: boolean }, command: Command) => {
      // The node runs elsewhere: a path is sent absolute.
      const local = resolve(io.cwd, release);
      const result = (await callControl(dataDirOf(command, io), 'supply', { release: existsSync(local) ? local : release }, {
        idleTimeoutMs: SUPPLY_IDLE_TIMEOUT_MS,
        onEvent: (event) => io.isTTY && !flags.json && showProgress(io, event as ProgressEvent),
      })) as SupplyAnswer;
      if (flags.json) io.stdout(`${JSON.stringify(result)}\n`);
      else {
        const how = result.source === 'peer' ? `fetched from ${result.peer}` : result.source === 'built' ? 'built here' : 'already here';
        io.stdout(`${result.name} ${result.cid} ${how} in ${result.seconds.toFixed(1)} s\n`);
      }
      setExit(EXIT_OK);
    });
}

/** Build steps on stderr, as the engine reports them. */
function showProgress(io: CliIo, event: ProgressEvent): void {
  switch (event.type) {
    case 'install': case 'update': io.stderr(`${event.type} ${event.part}\n`); break;
    case 'done': io.stderr(`${event.part}: done in ${(event.seconds ?? 0).toFixed(1)} s\n`); break;
    case 'failed': io.stderr(`${event.part}: failed: ${event.error}\n`); break;
    default: break;
  }
}
