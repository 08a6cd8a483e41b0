// `slapmesh supply RELEASE`: the running node makes a release available — from its own cache, a trusted
// peer's artifact, or a build — and this prints its CID and where it came from.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { callControl } from '../../node/control.js';
import { describeFetch, type FetchEvent, type SupplyEvent, type SupplyResult } from '../../node/releases.js';
import { formatSize } from '../../node/size.js';
import { EXIT_OK, type CliIo } from '../io.js';
import type { CommandContext } from '../main.js';
import { dataDirOf } from '../node/index.js';

/** A build prints lines often; one silent for this long is stuck (or the node is gone). */
export const SUPPLY_IDLE_TIMEOUT_MS = 30 * 60_000;

type SupplyAnswer = Omit<SupplyResult, 'path'>;
/** A supply event as the control socket carries it: a failed step's error is its message. */
type ProgressEvent = Exclude<SupplyEvent, { type: 'failed' }> | { type: 'failed'; part: string; error: string };

export function registerSupply(program: Command, { io, setExit }: CommandContext): void {
  program.command('supply')
    .description('make a release available on the running node: from its cache, a trusted peer, or a build')
    .argument('<release>', 'a profile (or a folder holding software.cfg), or the CID of a release')
    .option('--json', '{"cid", "name", "source", "peer"?, "seconds"} as one JSON line')
    .action(async (release: string, flags: { json?: boolean }, command: Command) => {
      // The node runs elsewhere: a path is sent absolute.
      const local = resolve(io.cwd, release);
      const progress = io.isTTY && !flags.json ? new SupplyProgress(io) : undefined;
      let result: SupplyAnswer;
      try {
        result = (await callControl(dataDirOf(command, io), 'supply', { release: existsSync(local) ? local : release }, {
          idleTimeoutMs: SUPPLY_IDLE_TIMEOUT_MS,
          onEvent: (event) => progress?.show(event as ProgressEvent),
        })) as SupplyAnswer;
      } finally {
        progress?.clear();
      }
      if (flags.json) io.stdout(`${JSON.stringify(result)}\n`);
      else {
        const how = result.source === 'peer' ? `fetched from ${result.peer}` : result.source === 'built' ? 'built here' : 'already here';
        io.stdout(`${result.name} ${result.cid} ${how} in ${result.seconds.toFixed(1)} s\n`);
      }
      setExit(EXIT_OK);
    });
}

/** On a terminal, on stderr: build steps as the engine reports them, and a line redrawn as a download goes. */
export class SupplyProgress {
  /** Whether a download's line is on screen, not yet ended. */
  private status = false;
  private download: { cid: string; peer: string; bytes: number; at: number } | undefined;

  constructor(private readonly io: CliIo, private readonly now = () => performance.now()) {}

  show(event: ProgressEvent): void {
    switch (event.type) {
      case 'install': case 'update': this.line(`${event.type} ${event.part}`); break;
      case 'done': this.line(`${event.part}: done in ${event.seconds.toFixed(1)} s`); break;
      case 'failed': this.line(`${event.part}: failed: ${event.error}`); break;
      case 'fetch': this.fetched(event); break;
      default: break;
    }
  }

  clear(): void {
    if (this.status) this.io.stderr('\r\x1b[K');
    this.status = false;
  }

  private fetched(event: FetchEvent): void {
    const { cid, peer, bytes, size } = event;
    const now = this.now();
    // The speed counts from the first report of this provider (a resumed download starts past 0).
    if (this.download?.cid !== cid || this.download.peer !== peer) this.download = { cid, peer, bytes, at: now };
    const seconds = (now - this.download.at) / 1000;
    const speed = seconds > 0 ? `, ${formatSize(Math.round((bytes - this.download.bytes) / seconds))}/s` : '';
    const percent = size > 0 ? Math.floor((100 * bytes) / size) : 100;
    const line = `${describeFetch(event)} (${percent}%${speed})`;
    // The last one ends its line and is not redrawn: it may wrap.
    const text = bytes === size ? line : this.fit(line, peer);
    this.io.stderr(`\r\x1b[K${text}`);
    this.status = true;
    if (bytes === size) {
      this.io.stderr('\n');
      this.status = false;
      this.download = undefined;
    }
  }

  /**
   * A line to redraw, short enough for the terminal: one that wraps is not erased by the next redraw. The
   * PeerId gives way first (its start and end are enough to tell it), then the end of the line.
   */
  private fit(text: string, peer: string): string {
    const width = (this.io.columns ?? Infinity) - 1;
    if (text.length <= width) return text;
    const shorter = text.replace(peer, `${peer.slice(0, 8)}…${peer.slice(-4)}`);
    return shorter.length <= width ? shorter : `${shorter.slice(0, Math.max(0, width - 1))}…`;
  }

  private line(text: string): void {
    this.clear();
    this.io.stderr(`${text}\n`);
  }
}
