// `slapmesh node start|status` and `slapmesh join`: run a node in the foreground, or ask the running one.
import { Command } from 'commander';
import { buildoutRunners } from '../../node/buildout-runners.js';
import { callControl } from '../../node/control.js';
import { defaultDataDir } from '../../node/data-dir.js';
import { SlapmeshNode, type NodeOptions, type ReleaseView } from '../../node/node.js';
import { CliError, EXIT_OK, type CliIo } from '../io.js';
import { parseSize } from '../cache/index.js';
import type { CommandContext } from '../main.js';

export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/4001';

/** The data directory every command uses: --data-dir, else $SLAPMESH_HOME, else ~/.slapmesh. */
export function dataDirOf(command: Command, io: CliIo): string {
  const flag = (command.optsWithGlobals() as { dataDir?: string }).dataDir;
  return flag ?? defaultDataDir(io.env);
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

interface StartFlags {
  listen?: string[];
  bootstrap?: string[];
  trust?: string[];
  open?: boolean;
  private?: boolean;
  trustAnyBuilder?: boolean;
  cacheQuota?: string;
  partitions: string;
  ports?: string;
  verbose?: boolean;
  json?: boolean;
}

function addStartOptions(command: Command): Command {
  return command
    .option('--listen <multiaddr>', `address to listen on, repeatable (default ${DEFAULT_LISTEN})`, collect)
    .option('--bootstrap <multiaddr>', 'a peer to join through (…/p2p/<PeerId>), repeatable', collect)
    .option('--trust <peer>', 'a PeerId to trust, repeatable', collect)
    .option('--open', 'let untrusted peers request releases this node already supplies')
    .option('--private', 'only trusted peers may connect')
    .option('--trust-any-builder', 'use cache entries signed by any peer')
    .option('--cache-quota <size>', 'size limit of the build cache (e.g. 20G)')
    .option('--partitions <n>', 'instances this node can host', '50')
    .option('--ports <range>', 'local ports partitions may use, A-B')
    .option('--verbose', 'debug lines in the log')
    .option('--json', 'print {"peerId", "addresses"} as one JSON line');
}

/** Runs a node until SIGINT or SIGTERM. */
async function runNode(command: Command, flags: StartFlags, { io, setExit }: CommandContext, extraBootstrap: string[] = []): Promise<void> {
  const partitions = Number(flags.partitions);
  if (!Number.isInteger(partitions) || partitions < 0) throw new CliError(`--partitions takes a number, not ${flags.partitions}`);
  const ports = flags.ports === undefined ? undefined : parsePortRange(flags.ports);
  const options: NodeOptions = {
    dataDir: dataDirOf(command, io),
    listen: flags.listen?.length ? flags.listen : [DEFAULT_LISTEN],
    bootstrap: [...extraBootstrap, ...(flags.bootstrap ?? [])],
    trust: flags.trust ?? [],
    open: Boolean(flags.open),
    private: Boolean(flags.private),
    trustAnyBuilder: Boolean(flags.trustAnyBuilder),
    ...(flags.cacheQuota !== undefined ? { cacheQuota: parseSize(flags.cacheQuota, '--cache-quota') } : {}),
    partitions,
    ...(ports ? { ports } : {}),
    verbose: Boolean(flags.verbose),
    stderr: io.stderr,
    // Tests and simulations run meshes faster than people need.
    ...(io.env['SLAPMESH_ADVERT_INTERVAL_MS'] ? { advertIntervalMs: Number(io.env['SLAPMESH_ADVERT_INTERVAL_MS']) } : {}),
    ...(io.env['SLAPMESH_HOSTING_LEASE_MS'] ? { hostingLeaseMs: Number(io.env['SLAPMESH_HOSTING_LEASE_MS']) } : {}),
  };
  const node = new SlapmeshNode(options);
  try {
    await node.start();
  } catch (error) {
    const e = error as Error;
    if (['DataDirLockedError', 'InvalidMultiaddrError', 'InvalidPeerIdError', 'IdentityError', 'StoreError'].includes(e.name)) throw new CliError(e.message);
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new CliError(`cannot listen: ${e.message}`);
    throw error;
  }
  io.stdout(flags.json ? `${JSON.stringify({ peerId: node.peerId, addresses: node.addresses() })}\n` : `peer ${node.peerId}\n${node.addresses().join('\n')}\n`);
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  await node.stop();
  // The process ends once its buildout runners have left: nothing it started outlives it.
  await buildoutRunners().close();
  setExit(EXIT_OK);
}

export function registerNode(program: Command, context: CommandContext): void {
  const node = program.command('node').description('run a node, or ask the running one');
  addStartOptions(node.command('start').description('run a node in the foreground until Ctrl-C; prints its PeerId and addresses'))
    .action(async (flags: StartFlags, command: Command) => runNode(command, flags, context));
  node.command('status')
    .description('the running node: PeerId, addresses, peers, connections, and its releases')
    .option('--json', 'one JSON object')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const status = (await callControl(dataDirOf(command, context.io), 'status')) as NodeStatus;
      context.io.stdout(flags.json ? `${JSON.stringify(status)}\n` : statusText(status));
      context.setExit(EXIT_OK);
    });
  addStartOptions(program.command('join').description('run a node that joins the mesh through MULTIADDR (node start with that bootstrap peer)').argument('<multiaddr>'))
    .action(async (address: string, flags: StartFlags, command: Command) => runNode(command, flags, context, [address]));
}

type NodeStatus = Record<string, unknown> & { releases: ReleaseView[] };

/** `key: value` lines, then a line per release: name, CID, state, and where to look when it failed. */
export function statusText({ releases, ...rest }: NodeStatus): string {
  const lines = Object.entries(rest).map(([key, value]) => `${key}: ${Array.isArray(value) ? value.join(' ') : String(value)}`);
  lines.push(`releases: ${releases.length}`);
  for (const release of releases) {
    const how = release.state === 'available' ? (release.source === 'peer' ? ` (from ${release.peer})` : ' (built here)') : '';
    const log = release.state !== 'available' && release.log ? ` (log: ${release.log})` : '';
    // An error's first line (the rest, a build's last output, is in its log).
    const error = release.error ? `: ${release.error.split('\n')[0]}` : '';
    lines.push(`  ${release.name} ${release.cid} ${release.state}${how}${error}${log}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `--ports A-B`: the local TCP ports partitions take theirs from. */
function parsePortRange(text: string): { from: number; to: number } {
  const match = /^(\d+)-(\d+)$/.exec(text.trim());
  const from = Number(match?.[1]);
  const to = Number(match?.[2]);
  if (!match || from < 1 || to > 65535 || from > to) throw new CliError(`--ports takes a range A-B of TCP ports (1-65535), not ${text}`);
  return { from, to };
}
