// bench:cache part 1 — supplying a realistic release (SQLite from Debian's sources, configure + make, as
// in bench:build) on node B from node A's artifact, against A building it from source. Two nodes, each its
// own process (`slapmesh node start`), on 127.0.0.1; both supplies through the CLI's control socket,
// timed by the nodes themselves (the `seconds` of `supply --json`).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { callControl } from '../node/control.js';
import type { PeerView } from '../node/node.js';
import type { SupplyResult } from '../node/releases.js';
import { debianOrigTarball } from './debian-sources.js';

const BIN = fileURLToPath(new URL('../cli/bin.js', import.meta.url));
const BUILD_TIMEOUT_MS = 60 * 60_000;

export interface SupplyFigures {
  release: string;
  buildSeconds: number;
  fetchSeconds: number;
  /** How many times faster B's supply from A's artifact is than A's build. */
  speedup: number;
}

interface NodeProcess {
  child: ChildProcess;
  peerId: string;
  addresses: string[];
  dataDir: string;
}

async function startNode(dataDir: string, extra: string[]): Promise<NodeProcess> {
  const child = spawn(process.execPath, [BIN, 'node', 'start', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--json', ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await Promise.race([once(createInterface({ input: child.stdout! }), 'line'), once(child, 'exit').then(() => { throw new Error(`node of ${dataDir} exited`); })])) as [string];
  return { child, dataDir, ...(JSON.parse(line) as { peerId: string; addresses: string[] }) };
}

/** The release folder: the SQLite tarball beside a profile that builds it (a self-contained bundle). */
function sqliteRelease(root: string): string {
  const source = debianOrigTarball('sqlite3');
  const release = join(root, 'sqlite');
  mkdirSync(release);
  copyFileSync(source.path, join(release, basename(source.path)));
  writeFileSync(join(release, 'software.cfg'), `[buildout]
parts = sqlite3

[sqlite3]
recipe = slapos.recipe.cmmi
url = \${:_profile_base_location_}/${basename(source.path)}
md5sum = ${source.md5}
configure-options =
  --disable-tcl
  --disable-static
`);
  return release;
}

export async function benchSupply(): Promise<SupplyFigures> {
  const root = mkdtempSync(join(tmpdir(), 'slapmesh-bench-supply-'));
  const nodes: NodeProcess[] = [];
  try {
    const release = sqliteRelease(root);
    const a = await startNode(join(root, 'a'), []);
    nodes.push(a);
    const b = await startNode(join(root, 'b'), ['--bootstrap', a.addresses[0]!, '--trust', a.peerId]);
    nodes.push(b);
    const built = (await callControl(a.dataDir, 'supply', { release }, { idleTimeoutMs: BUILD_TIMEOUT_MS })) as SupplyResult;
    if (built.source !== 'built') throw new Error(`A was expected to build the release, not to take it from ${built.source}`);
    // B supplies once A's advert lists the release (A sends it when the release becomes available).
    for (;;) {
      const peers = (await callControl(b.dataDir, 'peers')) as PeerView[];
      if (peers.some((p) => p.peerId === a.peerId && p.releases.some((r) => r.cid === built.cid))) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const fetched = (await callControl(b.dataDir, 'supply', { release: built.cid }, { idleTimeoutMs: BUILD_TIMEOUT_MS })) as SupplyResult;
    if (fetched.source !== 'peer') throw new Error(`B was expected to fetch the release from A, not: ${fetched.source}`);
    return { release: `SQLite (${basename(debianOrigTarball('sqlite3').path)})`, buildSeconds: built.seconds, fetchSeconds: fetched.seconds, speedup: built.seconds / fetched.seconds };
  } finally {
    await Promise.all(nodes.map(async (node) => {
      node.child.kill('SIGTERM');
      if (node.child.exitCode === null) await once(node.child, 'exit');
    }));
    rmSync(root, { recursive: true, force: true });
  }
}
