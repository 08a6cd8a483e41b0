// The build cache over a real mesh (design.md §6; issue 5's acceptance): nodes on 127.0.0.1 in this
// process, each with its own data directory; examples/hello built for real once, then supplied from
// peers through adverts, the DHT and the cache protocol.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, cpSync, existsSync, openSync, readFileSync, readdirSync, writeSync, closeSync, mkdirSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { hashFile } from '../../node/cache/cid.js';
import { IDENTITY_FILE } from '../../node/identity.js';
import { SlapmeshNode, type NodeOptions, type ReleaseView } from '../../node/node.js';
import type { FetchEvent, SupplyEvent } from '../../node/releases.js';
import { keyRankedFirst } from '../../simulations/adversary-peer.js';
import { removeTree, writeTree } from '../helpers/files.js';

const HELLO = fileURLToPath(new URL('../../../examples/hello', import.meta.url));
const FAST = { advertIntervalMs: 200, peerTtlMs: 5000 };

describe('node: the build cache over a mesh', function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  const nodes: SlapmeshNode[] = [];
  const logLines: string[] = [];
  const logEvents = new EventTarget();
  let release: string;
  let a: SlapmeshNode;
  let releaseCid: string;

  function options(extra: Partial<NodeOptions> = {}): NodeOptions {
    const dataDir = extra.dataDir ?? writeTree({});
    dirs.push(dataDir);
    return {
      dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: a ? [a.addresses()[0]!] : [], trust: [], open: false, private: false,
      trustAnyBuilder: false, partitions: 5, verbose: true, stderr: (line) => { logLines.push(line); logEvents.dispatchEvent(new Event('line')); }, ...FAST, ...extra,
    };
  }

  async function start(extra: Partial<NodeOptions> = {}): Promise<SlapmeshNode> {
    const node = new SlapmeshNode(options(extra));
    await node.start();
    nodes.push(node);
    return node;
  }

  /** A data directory for a node whose identity is `key`. */
  function dataDirWithKey(key: PrivateKey): string {
    const dataDir = writeTree({});
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dataDir, IDENTITY_FILE), privateKeyToProtobuf(key), { mode: 0o600 });
    return dataDir;
  }

  /** Resolves once `node` has an advert from `peer` listing `cid`. */
  async function seesRelease(node: SlapmeshNode, peer: string, cid: string): Promise<void> {
    while (!node.table.get(peer)?.advert.releases.some((r) => r.cid === cid)) await once(node.table, 'peer:updated');
  }

  const softwareRoot = (node: SlapmeshNode, cid: string) => join(node.options.dataDir, 'software', cid);
  const artifactOf = (node: SlapmeshNode) => readdirSync(join(node.options.dataDir, 'cache', 'blobs')).filter((cid) => cid !== releaseCid);

  before(async () => {
    release = join(writeTree({}), 'hello');
    cpSync(HELLO, release, { recursive: true });
    a = await start();
    const built = await a.supply(join(release, 'software.cfg'));
    assert.equal(built.source, 'built');
    releaseCid = built.cid;
  });

  after(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    dirs.splice(0).forEach(removeTree);
    removeTree(join(release, '..'));
  });

  it('B, trusting A, supplies the release by CID from A: bundle and artifact fetched, nothing built, and it works', async () => {
    const b = await start({ trust: [a.peerId] });
    await seesRelease(b, a.peerId, releaseCid);
    const events: SupplyEvent[] = [];
    const supplied = await b.supply(releaseCid, (event) => events.push(event));
    assert.deepEqual({ source: supplied.source, peer: supplied.peer, name: supplied.name }, { source: 'peer', peer: a.peerId, name: 'hello' });
    // Both downloads were told: from their start to their end, from A.
    const fetches = events.filter((event): event is FetchEvent => event.type === 'fetch');
    for (const [what, cid] of [['bundle', releaseCid], ['artifact', artifactOf(a)[0]]] as const) {
      const seen = fetches.filter((event) => event.what === what);
      assert.ok(seen.length >= 2 && seen.every((event) => event.cid === cid && event.peer === a.peerId && event.size === seen[0]!.size), `${what}: ${JSON.stringify(seen)}`);
      assert.deepEqual([seen[0]!.bytes, seen.at(-1)!.bytes], [0, seen[0]!.size]);
    }
    // No compiler ran: no build log, no build folder.
    assert.equal(existsSync(join(b.options.dataDir, 'software', `${releaseCid}.log`)), false);
    assert.equal(existsSync(join(b.options.dataDir, 'build')), false);
    const root = softwareRoot(b, releaseCid);
    assert.match(execFileSync(join(root, 'parts/hello-server/bin/hello-server'), ['--help'], { encoding: 'utf8' }), /Hello/);
    assert.match(readFileSync(join(root, 'instance.cfg'), 'utf8'), new RegExp(`${root}/parts/hello-server`));
    assert.deepEqual(artifactOf(b), artifactOf(a));
    // B now lists it too, and a second supply is local.
    assert.equal((await b.supply(releaseCid)).source, 'local');
  });

  it('node status lists the releases: built here with its log, from a peer, and failed with the error and its log', async () => {
    const b = await start({ trust: [a.peerId] });
    await seesRelease(b, a.peerId, releaseCid);
    const fetched = await b.supply(releaseCid);
    const broken = writeTree({ 'software.cfg': '[buildout]\nparts = fail\n\n[fail]\nrecipe = plone.recipe.command\ncommand = echo about to fail && exit 3\nstop-on-error = true\n' });
    dirs.push(broken);
    // On B: A's cache keeps only the release and its artifact (the tests below count on it).
    await assert.rejects(b.supply(join(broken, 'software.cfg')));
    const releasesOf = (node: SlapmeshNode) => (node.status() as { releases: ReleaseView[] }).releases;

    const [built, failed] = [releasesOf(a).find((r) => r.cid === releaseCid)!, releasesOf(b).find((r) => r.state === 'error')!];
    assert.deepEqual({ ...built, updatedAt: undefined }, { cid: releaseCid, name: 'hello', state: 'available', source: 'built', log: join(a.options.dataDir, 'software', `${releaseCid}.log`), updatedAt: undefined });
    assert.match(failed.error!, /fail/);
    assert.match(readFileSync(failed.log!, 'utf8'), /about to fail/);
    const had = releasesOf(b).find((r) => r.cid === releaseCid)!;
    assert.deepEqual({ ...had, updatedAt: undefined }, { cid: releaseCid, name: 'hello', state: 'available', source: 'peer', peer: fetched.peer, updatedAt: undefined });
    assert.ok(!Number.isNaN(Date.parse(had.updatedAt)));
  });

  it('C, not trusting A, ignores its entry and builds the release itself', async () => {
    const c = await start();
    await seesRelease(c, a.peerId, releaseCid);
    const supplied = await c.supply(join(release, 'software.cfg'));
    assert.equal(supplied.source, 'built');
    assert.equal(supplied.cid, releaseCid);
    assert.ok(logLines.some((line) => line.includes(`its builder ${a.peerId} is not trusted`)), 'the untrusted entry was seen and ignored');
    assert.match(execFileSync(join(softwareRoot(c, releaseCid), 'parts/hello-server/bin/hello-server'), ['--help'], { encoding: 'utf8' }), /Hello/);
  });

  it('takes entries of any builder with --trust-any-builder; two supplies at once share the downloads', async () => {
    const d = await start({ trustAnyBuilder: true });
    await seesRelease(d, a.peerId, releaseCid);
    // As two deployments of one release on a host: neither may fail because the other is downloading.
    const both = await Promise.all([d.supply(releaseCid), d.supply(releaseCid)]);
    assert.deepEqual(both.map((supplied) => supplied.source), ['peer', 'peer']);
  });

  it('detects a provider serving corrupted bytes, penalises it and completes from an honest one', async () => {
    const [artifact] = artifactOf(a);
    assert.ok(artifact);
    // The bad node's key is chosen so that it is the first provider the fetcher, E, tries for this artifact.
    const others = nodes.map((node) => node.peerId);
    const fetcherKey = await generateKeyPair('Ed25519');
    const badKey = await keyRankedFirst(others, artifact, [peerIdFromPrivateKey(fetcherKey).toString()]);
    const bad = await start({ dataDir: dataDirWithKey(badKey), trust: [a.peerId] });
    await seesRelease(bad, a.peerId, releaseCid);
    assert.equal((await bad.supply(releaseCid)).source, 'peer');
    // It now serves a copy whose first chunk is damaged.
    const file = join(bad.options.dataDir, 'cache', 'blobs', artifact);
    chmodSync(file, 0o644);
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from('corrupted'), 0, 9, 100);
    closeSync(fd);

    const e = await start({ dataDir: dataDirWithKey(fetcherKey), trust: [a.peerId] });
    await seesRelease(e, bad.peerId, releaseCid);
    const supplied = await e.supply(releaseCid);
    assert.equal(supplied.source, 'peer');
    assert.notEqual(supplied.peer, bad.peerId);
    assert.ok(logLines.some((line) => line.includes(`provider ${bad.peerId} sent bad data for ${artifact}`)), 'the bad provider was detected');
    assert.equal((await hashFile(join(e.options.dataDir, 'cache', 'blobs', artifact))).cid, artifact);
    assert.match(execFileSync(join(softwareRoot(e, releaseCid), 'parts/hello-server/bin/hello-server'), ['--help'], { encoding: 'utf8' }), /Hello/);
  });

  it('shares a shared part between two releases: B builds its release but fetches the part another node built, after that node restarted', async () => {
    const variant = (name: string, extra: string) => {
      const folder = join(writeTree({}), name);
      cpSync(HELLO, folder, { recursive: true });
      appendFileSync(join(folder, 'software.cfg'), `\n[hello-server]\nshared = true\n${extra}`);
      dirs.push(join(folder, '..'));
      return folder;
    };
    const first = variant('hello-shared', '');
    const second = variant('hello-shared-too', '\n[buildout]\nparts += note\n\n[note]\nrecipe = plone.recipe.command\ncommand = echo noted\n');
    // A builder of its own, restarted after the build: the part is in no advert, and the DHT keeps provider
    // records in memory; the restarted node announces what it holds (and B, knowing no provider, would ask
    // the peers it is connected to).
    let builder = await start({ bootstrap: [] });
    assert.equal((await builder.supply(first)).source, 'built');
    await builder.stop();
    builder = new SlapmeshNode(builder.options);
    await builder.start();
    nodes.push(builder);
    const announced = logLines.length;
    const b = await start({ bootstrap: [builder.addresses()[0]!], trust: [builder.peerId] });
    while (!logLines.slice(announced).some((line) => /announced \d+ blobs and \d+ cache keys in the DHT/.test(line))) await once(logEvents, 'line');
    const supplied = await b.supply(second);
    assert.equal(supplied.source, 'built', 'nobody built this release: B builds it');
    assert.ok(logLines.some((line) => line.includes(`shared part hello-server (`) && line.includes(`installed from ${builder.peerId}'s artifact`) && line.includes(`fetched from ${builder.peerId}`)));
    const buildLog = readFileSync(join(b.options.dataDir, 'software', `${supplied.cid}.log`), 'utf8');
    assert.match(buildLog, /note: noted/);
    assert.doesNotMatch(buildLog, /hello-server: .*(configure|make)/, 'hello-server was not compiled on B');
    const [server] = readdirSync(join(softwareRoot(b, supplied.cid), 'shared', 'hello-server'));
    assert.match(execFileSync(join(softwareRoot(b, supplied.cid), 'shared', 'hello-server', server!, 'bin', 'hello-server'), ['--help'], { encoding: 'utf8' }), /Hello/);
  });
});
