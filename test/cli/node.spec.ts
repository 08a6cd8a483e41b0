// The node commands as people run them: real processes, each node its own.
import { strict as assert } from 'node:assert';
import { cli, startNode, stop, type Started } from '../helpers/processes.js';
import { removeTree, writeTree } from '../helpers/files.js';

describe('cli: slapmesh node, join, peers, trust', function () {
  this.timeout(60_000);
  let a: string;
  let b: string;
  const running: Started[] = [];
  beforeEach(() => {
    a = writeTree({});
    b = writeTree({});
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map(stop));
    removeTree(a);
    removeTree(b);
  });

  it('node start prints its PeerId and addresses; join, peers and trust talk to the running node', async () => {
    const first = await startNode(['node', 'start', '--data-dir', a]);
    running.push(first);
    assert.match(first.peerId, /^12D3KooW/);
    assert.ok(first.addresses.every((ad) => ad.startsWith('/ip4/127.0.0.1/tcp/') && ad.endsWith(`/p2p/${first.peerId}`)));
    const second = await startNode(['join', first.addresses[0]!, '--data-dir', b]);
    running.push(second);

    // The advert interval is 200 ms here: ask until the second node is known (bounded).
    let peers: { peerId: string }[] = [];
    for (let i = 0; i < 100 && !peers.some((p) => p.peerId === second.peerId); i++) {
      const r = await cli('peers', '--json', '--data-dir', a);
      assert.equal(r.code, 0, r.stderr);
      peers = JSON.parse(r.stdout) as { peerId: string }[];
    }
    assert.ok(peers.some((p) => p.peerId === second.peerId), 'the joining node is listed');

    const status = await cli('node', 'status', '--json', '--data-dir', a);
    assert.equal((JSON.parse(status.stdout) as { peerId: string }).peerId, first.peerId);

    assert.equal((await cli('trust', 'add', second.peerId, '--data-dir', a)).code, 0);
    assert.deepEqual(JSON.parse((await cli('trust', 'list', '--json', '--data-dir', a)).stdout), [second.peerId]);
    const bad = await cli('trust', 'add', 'not-a-peer', '--data-dir', a);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /not a PeerId/);

    assert.equal(await stop(second), 0);
    assert.equal(await stop(first), 0);
  });

  it('says clearly when no node runs, and refuses a second node on one data directory', async () => {
    const none = await cli('peers', '--data-dir', a);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no slapmesh node is running for/);
    const first = await startNode(['node', 'start', '--data-dir', a]);
    running.push(first);
    const second = await cli('node', 'start', '--data-dir', a, '--listen', '/ip4/127.0.0.1/tcp/0');
    assert.equal(second.code, 1);
    assert.match(second.stderr, /another slapmesh node \(pid \d+\) uses/);
    const bad = await cli('node', 'start', '--data-dir', b, '--bootstrap', '/ip4/1.2.3/tcp/x');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid --bootstrap multiaddr/);
  });
});
