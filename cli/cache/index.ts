// `slapmesh cache list|stats|verify|gc`: the running node's build cache (blobs by CID).
import type { Command } from 'commander';
import { callControl } from '../../node/control.js';
import type { CachedBlob } from '../../node/node.js';
import { formatSize, SIZE_UNITS } from '../../node/size.js';
import { CliError, EXIT_OK } from '../io.js';
import type { CommandContext } from '../main.js';
import { dataDirOf } from '../node/index.js';

/** Verifying re-hashes every blob: allow for a large cache on a slow disk. */
const VERIFY_TIMEOUT_MS = 60 * 60_000;

/** `20G`, `512M`, `1.5T`, `1000` (bytes); units are powers of 1024, `B`/`iB` optional. */
export function parseSize(text: string, flag: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  const bytes = match ? Math.floor(Number(match[1]) * SIZE_UNITS[match[2]!.toUpperCase()]!) : NaN;
  if (!Number.isSafeInteger(bytes)) throw new CliError(`${flag} takes a size such as 500M or 20G, not ${JSON.stringify(text)}`);
  return bytes;
}

export function registerCache(program: Command, { io, setExit }: CommandContext): void {
  const cache = program.command('cache').description("the running node's build cache: release bundles and built artifacts by CID");
  const print = (json: boolean | undefined, value: unknown, text: string) => {
    io.stdout(json ? `${JSON.stringify(value)}\n` : text);
    setExit(EXIT_OK);
  };
  cache.command('list').description('every blob, most recently used first').option('--json', 'a JSON array')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const blobs = (await callControl(dataDirOf(command, io), 'cache.list')) as CachedBlob[];
      print(flags.json, blobs, blobs.length === 0 ? 'the cache is empty\n' : blobs.map((b) =>
        `${b.cid}  ${formatSize(b.size).padStart(10)}  ${b.lastUsed}  ${b.kind}${b.key ? ` ${b.key}` : ''}${b.name ? ` ${b.name}` : ''}\n`).join(''));
    });
  cache.command('stats').description('blobs, bytes, downloads in progress, quota, entries').option('--json', 'one JSON object')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const stats = (await callControl(dataDirOf(command, io), 'cache.stats')) as { blobs: number; bytes: number; partials: number; partialBytes: number; quota: number | null; entries: number };
      print(flags.json, stats, `${stats.blobs} blobs, ${formatSize(stats.bytes)}${stats.quota === null ? ' (no quota)' : ` of a ${formatSize(stats.quota)} quota`}\n` +
        `${stats.partials} downloads in progress, ${formatSize(stats.partialBytes)}\n${stats.entries} signed cache entries\n`);
    });
  cache.command('verify').description('re-hash every blob; remove those that no longer match their CID').option('--json', 'one JSON object')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const result = (await callControl(dataDirOf(command, io), 'cache.verify', {}, { idleTimeoutMs: VERIFY_TIMEOUT_MS })) as { checked: number; removed: string[] };
      print(flags.json, result, `${result.checked} blobs checked, ${result.removed.length} corrupt and removed\n${result.removed.map((cid) => `  ${cid}\n`).join('')}`);
    });
  cache.command('gc').description('evict least recently used blobs beyond the quota')
    .option('--quota <size>', "this size instead of the node's --cache-quota (e.g. 10G, 0 to empty it)")
    .option('--json', 'one JSON object')
    .action(async (flags: { json?: boolean; quota?: string }, command: Command) => {
      const params = flags.quota === undefined ? {} : { quota: parseSize(flags.quota, '--quota') };
      const result = (await callControl(dataDirOf(command, io), 'cache.gc', params)) as { evicted: string[]; freedBytes: number; quota: number | null };
      print(flags.json, result, result.quota === null ? 'the node has no --cache-quota: give one with --quota\n' : `${result.evicted.length} blobs evicted, ${formatSize(result.freedBytes)} freed\n`);
    });
}
