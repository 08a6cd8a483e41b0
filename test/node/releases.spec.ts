// Supplying releases on one node and from a trusted builder's artifact (real builds of examples/hello,
// real archives and relocation; the mesh part is in test/node/cache-mesh.spec.ts).
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { BlobStore } from '../../node/cache/blob-store.js';
import { platform } from '../../node/hardware.js';
import { Releases, SupplyActivity } from '../../node/releases.js';
import { NodeStore } from '../../node/store.js';
import { removeTree, writeTree } from '../helpers/files.js';
import { recordingLogger } from '../helpers/nodes.js';

const HELLO = fileURLToPath(new URL('../../../examples/hello', import.meta.url));

interface Side { dir: string; store: NodeStore; blobs: BlobStore; key: PrivateKey; id: string; releases: Releases; lines: string[] }

async function side(trusted: string[] = []): Promise<Side> {
  const dir = writeTree({});
  const store = NodeStore.open(join(dir, 'node.db'));
  const blobs = new BlobStore(join(dir, 'cache'));
  await blobs.init();
  const key = await generateKeyPair('Ed25519');
  const id = peerIdFromPrivateKey(key).toString();
  const lines: string[] = [];
  const releases = new Releases({ dataDir: dir, store, blobs, key, peerId: id, platform: platform(), trusts: (b) => trusted.includes(b), log: recordingLogger(lines) });
  return { dir, store, blobs, key, id, releases, lines };
}

describe('node/releases: supply', function () {
  this.timeout(60_000);
  const sides: Side[] = [];
  let release: string;
  before(() => {
    release = join(writeTree({}), 'hello');
    cpSync(HELLO, release, { recursive: true });
  });
  after(() => {
    for (const s of sides) {
      s.store.close();
      removeTree(s.dir);
    }
    removeTree(join(release, '..'));
  });

  it('builds a release into the software root, records it, and is local the second time', async () => {
    const a = await side();
    sides.push(a);
    const first = await a.releases.supply(join(release, 'software.cfg'));
    assert.equal(first.source, 'built');
    assert.equal(first.name, 'hello');
    assert.match(first.cid, /^bagaaiera/);
    const root = a.releases.softwareRoot(first.cid);
    assert.equal(first.path, root);
    assert.match(execFileSync(join(root, 'parts/hello-server/bin/hello-server'), ['--help'], { encoding: 'utf8' }), /Hello/);
    const instanceCfg = readFileSync(join(root, 'instance.cfg'), 'utf8');
    assert.ok(instanceCfg.includes(join(root, 'parts/hello-server')), 'instance.cfg names the server in the software root');
    assert.ok(!instanceCfg.includes('_slapmesh'), 'no trace of the build prefix');
    assert.equal(a.store.getRelease(first.cid)?.state, 'available');
    assert.equal(a.store.getRelease(first.cid)?.source, 'built');
    assert.equal(a.store.listCacheEntries().length, 1);
    assert.deepEqual(readdirSync(join(a.dir, 'build')), [], 'the build folder is cleaned up');

    const again = await a.releases.supply(release);
    assert.equal(again.source, 'local');
    assert.equal(again.cid, first.cid, 'a folder holding software.cfg is the same release');

    // A lost software root comes back from the node's own artifact: no new build, so no new entry.
    const [entry] = a.store.listCacheEntries();
    rmSync(root, { recursive: true });
    const restored = await a.releases.supply(first.cid);
    assert.equal(restored.source, 'built');
    assert.deepEqual(a.store.listCacheEntries(), [entry]);
    assert.match(execFileSync(join(root, 'parts/hello-server/bin/hello-server'), ['--help'], { encoding: 'utf8' }), /Hello/);
  });

  it('installs from a trusted builder\'s entry and artifact without building, under its own root', async () => {
    const a = sides[0]!;
    const b = await side([a.id]);
    sides.push(b);
    // What the cache protocol would bring: A's signed entry and its blobs.
    for (const entry of a.store.listCacheEntries()) {
      b.store.putCacheEntry(entry);
      await b.blobs.put((await a.blobs.path(entry.cid))!);
    }
    const result = await b.releases.supply(join(release, 'software.cfg'));
    assert.equal(result.source, 'peer');
    const root = b.releases.softwareRoot(result.cid);
    assert.ok(!existsSync(join(b.dir, 'software', `${result.cid}.log`)), 'no build log: nothing was built');
    assert.match(execFileSync(join(root, 'parts/hello-server/bin/hello-server'), ['--help'], { encoding: 'utf8' }), /Hello/);
    assert.ok(readFileSync(join(root, 'instance.cfg'), 'utf8').includes(join(root, 'parts/hello-server')));
    assert.ok(!readFileSync(join(root, 'instance.cfg'), 'utf8').includes(a.dir), 'nothing of A\'s paths is left');
  });

  it('builds for itself when the only entry is of a builder it does not trust', async () => {
    const a = sides[0]!;
    const c = await side();
    sides.push(c);
    for (const entry of a.store.listCacheEntries()) c.store.putCacheEntry(entry);
    const result = await c.releases.supply(join(release, 'software.cfg'));
    assert.equal(result.source, 'built');
  });

  it('supplies a release by URL: mirrored over HTTP, bundled to the CID of its folder, and built', async () => {
    const folder = writeTree({
      'web/software.cfg': '[buildout]\nparts = page\n\n[page]\nrecipe = slapos.recipe.template\nurl = ${:_profile_base_location_}/page.in\noutput = ${buildout:directory}/page.html\n',
      'web/page.in': '<p>hello</p>\n',
    });
    const server = createServer((request, response) => {
      readFile(join(folder, normalize(new URL(request.url!, 'http://x').pathname))).then((bytes) => response.end(bytes), () => {
        response.statusCode = 404;
        response.end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const d = await side();
    sides.push(d);
    try {
      const result = await d.releases.supply(`http://127.0.0.1:${(server.address() as AddressInfo).port}/web/software.cfg`);
      assert.deepEqual({ name: result.name, source: result.source }, { name: 'web', source: 'built' });
      assert.equal(readFileSync(join(result.path, 'page.html'), 'utf8'), '<p>hello</p>\n');
      assert.equal((await d.releases.supply(join(folder, 'web'))).cid, result.cid);
    } finally {
      server.close();
      removeTree(folder);
    }
  });
});

describe('node/releases: SupplyActivity', () => {
  it('says which parts are building (several at once), then that they are built', () => {
    const activity = new SupplyActivity();
    assert.equal(activity.after({ type: 'install', part: 'wait' }), 'building wait');
    assert.equal(activity.after({ type: 'update', part: 'server' }), 'building wait, server');
    assert.equal(activity.after({ type: 'log', part: 'server', line: 'make' }), undefined);
    assert.equal(activity.after({ type: 'done', part: 'server', seconds: 1 }), 'building wait');
    assert.equal(activity.after({ type: 'done', part: 'wait', seconds: 2 }), 'parts built');
  });

  it('leaves a failed part to the supply\'s error', () => {
    const activity = new SupplyActivity();
    activity.after({ type: 'install', part: 'server' });
    assert.equal(activity.after({ type: 'failed', part: 'server', error: new Error('make failed') }), undefined);
    assert.equal(activity.after({ type: 'install', part: 'other' }), 'building other');
  });

  it('says how far a download is, and when it is whole', () => {
    const activity = new SupplyActivity();
    const event = { type: 'fetch', what: 'artifact', cid: 'bafy', size: 200 * 1024 ** 2, peer: 'P' } as const;
    assert.equal(activity.after({ ...event, bytes: 55 * 1024 ** 2 }), 'fetching the artifact from P: 55.0 MiB of 200.0 MiB');
    assert.equal(activity.after({ ...event, bytes: event.size }), 'fetched the artifact from P: 200.0 MiB of 200.0 MiB');
  });
});
