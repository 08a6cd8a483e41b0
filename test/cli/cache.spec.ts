// `slapmesh supply` and `slapmesh cache` as people run them, nodes as processes: a release built on A and
// supplied on B from A's artifact; the cache commands; a fetching node killed with SIGKILL mid-transfer
// resumes where it stopped once restarted, and no partial blob ever shows in its cache.
import { strict as assert } from 'node:assert';
import { appendFileSync, chmodSync, cpSync, existsSync, readFileSync, readdirSync, statSync, watch, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashFile } from '../../node/cache/cid.js';
import { callControl } from '../../node/control.js';
import type { PeerView } from '../../node/node.js';
import { removeTree, writeTree } from '../helpers/files.js';
import { cli, startNode, stop, type Started } from '../helpers/processes.js';

const HELLO = fileURLToPath(new URL('../../../examples/hello', import.meta.url));
/** Big enough that a transfer on loopback can be cut in the middle. */
const BIG_MIB = 96;

/** Asks the node of `dataDir` for its peers until `condition` holds (adverts come every 200 ms here). */
async function untilPeers(dataDir: string, condition: (peers: PeerView[]) => boolean): Promise<void> {
  for (;;) {
    if (condition((await callControl(dataDir, 'peers')) as PeerView[])) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const lists = (peer: string, cid: string) => (peers: PeerView[]) => peers.some((p) => p.peerId === peer && p.releases.some((r) => r.cid === cid));

describe('cli: slapmesh supply and slapmesh cache', function () {
  this.timeout(120_000);
  const running: Started[] = [];
  const dirs: string[] = [];
  let a: Started;
  let aDir: string;

  const dataDir = () => {
    const dir = writeTree({});
    dirs.push(dir);
    return dir;
  };
  const json = <T>(result: { code: number; stdout: string; stderr: string }): T => {
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as T;
  };

  before(async () => {
    aDir = dataDir();
    a = await startNode(['node', 'start', '--data-dir', aDir, '--verbose']);
    running.push(a);
  });

  after(async () => {
    await Promise.all(running.splice(0).map(stop));
    dirs.splice(0).forEach(removeTree);
  });

  it('supplies a release built on A to B from A\'s artifact, and lists, counts, verifies and collects the cache', async () => {
    const release = join(dataDir(), 'hello');
    cpSync(HELLO, release, { recursive: true });
    const built = json<{ cid: string; name: string; source: string; seconds: number }>(await cli('supply', release, '--json', '--data-dir', aDir));
    assert.deepEqual({ name: built.name, source: built.source }, { name: 'hello', source: 'built' });
    assert.ok(built.seconds > 0);

    const bDir = dataDir();
    const b = await startNode(['join', a.addresses[0]!, '--trust', a.peerId, '--data-dir', bDir, '--cache-quota', '1G']);
    running.push(b);
    await untilPeers(bDir, lists(a.peerId, built.cid));
    const fetched = json<{ cid: string; source: string; peer: string }>(await cli('supply', built.cid, '--json', '--data-dir', bDir));
    assert.deepEqual(fetched, { ...fetched, cid: built.cid, source: 'peer', peer: a.peerId });
    const text = await cli('supply', release, '--data-dir', bDir);
    assert.match(text.stdout, new RegExp(`^hello ${built.cid} already here in \\d+\\.\\d s\\n$`));

    const blobs = json<{ cid: string; size: number; kind: string; key?: string; name?: string }[]>(await cli('cache', 'list', '--json', '--data-dir', bDir));
    assert.deepEqual(blobs.map((blob) => blob.kind).sort(), ['artifact', 'bundle']);
    assert.equal(blobs.find((blob) => blob.kind === 'bundle')?.name, 'hello');
    assert.match(blobs.find((blob) => blob.kind === 'artifact')!.key!, new RegExp(`^release/${built.cid}/`));
    const stats = json<{ blobs: number; bytes: number; quota: number; entries: number }>(await cli('cache', 'stats', '--json', '--data-dir', bDir));
    assert.deepEqual(stats, { ...stats, blobs: 2, bytes: blobs.reduce((sum, blob) => sum + blob.size, 0), quota: 1024 ** 3, entries: 1 });

    // A blob damaged on disk is found and removed by verify.
    const artifact = blobs.find((blob) => blob.kind === 'artifact')!.cid;
    const file = join(bDir, 'cache', 'blobs', artifact);
    chmodSync(file, 0o644);
    appendFileSync(file, 'x');
    assert.deepEqual(json(await cli('cache', 'verify', '--json', '--data-dir', bDir)), { checked: 2, removed: [artifact] });

    // gc down to a quota smaller than the bundle evicts it; the software root stays usable.
    const gc = json<{ evicted: string[]; freedBytes: number }>(await cli('cache', 'gc', '--quota', '0', '--json', '--data-dir', bDir));
    assert.deepEqual(gc.evicted, [built.cid]);
    assert.deepEqual(readdirSync(join(bDir, 'cache', 'blobs')), []);
    assert.ok(existsSync(join(bDir, 'software', built.cid, 'parts', 'hello-server', 'bin', 'hello-server')));

    const bad = await cli('cache', 'gc', '--quota', 'lots', '--data-dir', bDir);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--quota takes a size such as 500M or 20G, not "lots"/);
    const missing = await cli('supply', join(release, 'nothing.cfg'), '--data-dir', bDir);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^slapmesh: .*nothing\.cfg/);
  });

  it('resumes a fetch cut by SIGKILL from where it stopped, and shows no partial blob in the cache', async () => {
    const release = dataDir();
    writeFileSync(join(release, 'software.cfg'), [
      '[buildout]', 'parts = big', '',
      '[big]', 'recipe = plone.recipe.command', 'location = ${buildout:parts-directory}/big',
      `command = mkdir -p \${:location} && head -c ${BIG_MIB * 1024 * 1024} /dev/urandom > \${:location}/data`, 'stop-on-error = true', '',
    ].join('\n'));
    const built = json<{ cid: string }>(await cli('supply', release, '--json', '--data-dir', aDir));

    const kDir = dataDir();
    const args = ['join', a.addresses[0]!, '--trust', a.peerId, '--data-dir', kDir];
    let k = await startNode(args);
    running.push(k);
    await untilPeers(kDir, lists(a.peerId, built.cid));
    const partial = join(kDir, 'cache', 'partial');
    const watcher = watch(partial);
    const supply = callControl(kDir, 'supply', { release: built.cid }, { idleTimeoutMs: 60_000 });
    supply.catch(() => undefined); // it fails when the node is killed
    let artifact = '';
    // Killed once a few MiB of the artifact (not the small bundle) have arrived.
    for (;;) {
      await once(watcher, 'change');
      artifact = readdirSync(partial).find((name) => name !== built.cid && statSync(join(partial, name), { throwIfNoEntry: false })?.size! >= 4 << 20) ?? '';
      if (artifact) break;
    }
    k.child.kill('SIGKILL');
    await once(k.child, 'exit');
    watcher.close();
    const kept = statSync(join(partial, artifact)).size;
    assert.ok(kept > 0 && kept < BIG_MIB << 20, `the partial download holds ${kept} bytes`);
    assert.equal(existsSync(join(kDir, 'cache', 'blobs', artifact)), false, 'no partial blob in the cache');

    k = await startNode(args);
    running.push(k);
    await untilPeers(kDir, lists(a.peerId, built.cid));
    const resumed = json<{ source: string }>(await cli('supply', built.cid, '--json', '--data-dir', kDir));
    assert.equal(resumed.source, 'peer');
    assert.equal((await hashFile(join(kDir, 'cache', 'blobs', artifact))).cid, artifact);
    assert.equal(existsSync(join(partial, artifact)), false);
    // A served it twice to K: from the start, then from where K stood after its restart.
    const sends = [...readFileSync(join(aDir, 'node.log'), 'utf8').matchAll(new RegExp(`sending ${artifact} from byte (\\d+) of`, 'g'))].map((m) => Number(m[1]));
    assert.equal(sends[0], 0);
    assert.ok(sends.length === 2 && sends[1]! > 0 && sends[1]! % (1 << 20) === 0, `sends from ${sends.join(', ')}`);
  });
});
