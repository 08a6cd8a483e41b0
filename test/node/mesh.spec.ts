// Real nodes on 127.0.0.1, each with its own data directory, in this process.
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { SlapmeshNode, type NodeOptions } from '../../node/node.js';
import { removeTree, writeTree } from '../helpers/files.js';

const FAST = { advertIntervalMs: 200, peerTtlMs: 1500 };

describe('node: a mesh on loopback', function () {
  this.timeout(30_000);
  const dirs: string[] = [];
  const nodes: SlapmeshNode[] = [];

  const logLines: string[] = [];
  const logEvents = new EventTarget();
  /** Resolves once some node has logged a line matching `pattern`. */
  async function logged(pattern: RegExp): Promise<void> {
    while (!logLines.some((line) => pattern.test(line))) await once(logEvents, 'line');
  }

  function options(extra: Partial<NodeOptions> = {}): NodeOptions {
    const dataDir = writeTree({});
    dirs.push(dataDir);
    return { dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], trust: [], open: false, private: false, trustAnyBuilder: false, partitions: 5, verbose: false, stderr: (line) => { logLines.push(line); logEvents.dispatchEvent(new Event('line')); }, ...FAST, ...extra };
  }

  async function start(extra: Partial<NodeOptions> = {}): Promise<SlapmeshNode> {
    const node = new SlapmeshNode(options(extra));
    await node.start();
    nodes.push(node);
    return node;
  }

  /** Resolves once `node` knows every peer in `ids`. */
  async function knows(node: SlapmeshNode, ids: string[]): Promise<void> {
    const missing = () => ids.filter((id) => !node.table.get(id));
    while (missing().length) await once(node.table, 'peer:updated');
  }

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    dirs.splice(0).forEach(removeTree);
  });

  it('joins through a bootstrap peer and converges: every node has every other node\'s advert', async () => {
    const first = await start();
    const others = await Promise.all([1, 2, 3, 4].map(() => start({ bootstrap: [first.addresses()[0]!] })));
    const all = [first, ...others];
    await Promise.all(all.map((node) => knows(node, all.filter((n) => n !== node).map((n) => n.peerId))));
    for (const node of all) {
      const peers = node.peers();
      assert.equal(peers.length, 4);
      for (const peer of peers) {
        assert.ok(peer.hardware.cpus >= 1 && peer.hardware.memory > 0 && peer.addresses.length > 0);
        assert.match(peer.lastSeen, /^\d{4}-\d\d-\d\dT/);
      }
    }
  });

  it('keeps receiving adverts with more than ten nodes on one host (no colocation penalty)', async () => {
    const first = await start();
    const others = await Promise.all(Array.from({ length: 11 }, () => start({ bootstrap: [first.addresses()[0]!] })));
    const all = [first, ...others];
    await Promise.all(all.map((node) => knows(node, all.filter((n) => n !== node).map((n) => n.peerId))));
    // Three more rounds of adverts from every peer, after gossipsub has scored its peers.
    await Promise.all(all.map(async (node) => {
      const rounds = new Map<string, number>();
      while ([...rounds.values()].filter((n) => n >= 3).length < all.length - 1) {
        const [event] = (await once(node.table, 'peer:updated')) as [CustomEvent<{ peerId: string }>];
        rounds.set(event.detail.peerId, (rounds.get(event.detail.peerId) ?? 0) + 1);
      }
    }));
  });

  it('joins once its bootstrap peer comes up, though it was down when the node started', async () => {
    const seedOptions = options();
    let seed = new SlapmeshNode(seedOptions);
    await seed.start();
    const address = seed.addresses()[0]!;
    await seed.stop();
    const joiner = await start({ bootstrap: [address], rejoinDelayMs: 100 });
    await logged(/no bootstrap peer reachable/);
    // the same identity on the same address
    seed = new SlapmeshNode({ ...seedOptions, listen: [address.replace(/\/p2p\/.*$/, '')] });
    await seed.start();
    nodes.push(seed);
    await Promise.all([knows(joiner, [seed.peerId]), knows(seed, [joiner.peerId])]);
  });

  it('forgets a node that stopped, once it has been silent longer than the TTL', async () => {
    const a = await start();
    const b = await start({ bootstrap: [a.addresses()[0]!] });
    await knows(a, [b.peerId]);
    const id = b.peerId;
    const expired = new Promise<void>((resolve) => a.table.addEventListener('peer:expired', (e) => e.detail === id && resolve()));
    await b.stop();
    nodes.splice(nodes.indexOf(b), 1);
    await expired;
    assert.equal(a.table.get(id), undefined);
  });

  it('keeps its PeerId and its trust list across a restart', async () => {
    const opts = options();
    const node = new SlapmeshNode(opts);
    await node.start();
    const id = node.peerId;
    const friend = (await start()).peerId;
    await (await import('../../node/control.js')).callControl(opts.dataDir, 'trust.add', { peer: friend });
    await node.stop();
    const again = new SlapmeshNode(opts);
    await again.start();
    nodes.push(again);
    assert.equal(again.peerId, id);
    assert.deepEqual((again.status() as { trusted: number }).trusted, 1);
  });

  it('refuses a second node on the same data directory, and the first keeps working', async () => {
    const opts = options();
    const first = new SlapmeshNode(opts);
    await first.start();
    nodes.push(first);
    await assert.rejects(new SlapmeshNode(opts).start(), { name: 'DataDirLockedError' });
    assert.equal((first.status() as { peerId: string }).peerId, first.peerId);
  });

  it('with --private, lets only trusted peers connect', async () => {
    const outsider = await start();
    const friendOpts = options();
    const friendProbe = new SlapmeshNode(friendOpts);
    await friendProbe.start();
    const friendId = friendProbe.peerId;
    await friendProbe.stop();
    const guarded = await start({ private: true, trust: [friendId] });
    const friend = new SlapmeshNode({ ...friendOpts, bootstrap: [guarded.addresses()[0]!] });
    await friend.start();
    nodes.push(friend);
    await knows(guarded, [friendId]);
    // The dial may complete on the outsider's side; the guarded node drops the connection once Noise
    // has told it who is calling, and never registers it.
    const closed = once(outsider.connections, 'connection:close');
    await outsider.dial(guarded.addresses()[0]!).catch(() => undefined);
    await closed;
    assert.ok(!guarded.isConnected(outsider.peerId));
    assert.ok(!outsider.isConnected(guarded.peerId));
    assert.equal(guarded.table.get(outsider.peerId), undefined);
  });

  it('refuses an invalid multiaddr with a clear error', async () => {
    await assert.rejects(start({ bootstrap: ['/ip4/300.1.2.3/tcp/1'] }), { name: 'InvalidMultiaddrError' });
    await assert.rejects(start({ bootstrap: ['/ip4/127.0.0.1/tcp/1'] }), /must end with \/p2p\/<PeerId>/);
  });
});
