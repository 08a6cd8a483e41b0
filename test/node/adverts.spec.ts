// The advert service on real libp2p nodes (loopback TCP, noise, yamux, identify, gossipsub).
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { gossipsub, type GossipSub } from '@libp2p/gossipsub';
import { identify, type Identify } from '@libp2p/identify';
import type { Libp2p, PrivateKey } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { createLibp2p } from 'libp2p';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { sha256 } from 'multiformats/hashes/sha2';
import { signAdvert, verifyAdvert, type Advert } from '../../node/advert.js';
import { ADVERT_INTERVAL_JITTER, ADVERT_TOPIC, AdvertService, jittered, type AdvertContent } from '../../node/adverts.js';
import type { Logger } from '../../node/log.js';
import { PeerTable } from '../../node/peer-table.js';
import { INFO_PROTOCOL, infoProtocol, type InfoProtocol } from '../../protocols/info/index.js';
import type { Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';

type Node = Libp2p<{ identify: Identify; pubsub: GossipSub }>;

interface Member {
  name: string;
  id: string;
  key: PrivateKey;
  node: Node;
  table: PeerTable;
  info: InfoProtocol;
  adverts: AdvertService;
  content: AdvertContent;
  lines: string[];
  logged: EventTarget;
}

async function createNode(privateKey: PrivateKey): Promise<Node> {
  return createLibp2p({
    privateKey,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { inboundConnectionThreshold: 10_000 },
    services: {
      identify: identify(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, heartbeatInterval: 100 }),
    },
  });
}

function recordingLogger(lines: string[], logged: EventTarget): Logger {
  const record = (line: string) => {
    lines.push(line);
    logged.dispatchEvent(new Event('line'));
  };
  const log = ((message: string) => record(message)) as Logger;
  log.error = (message) => record(`error: ${message}`);
  log.debug = (message) => record(`debug: ${message}`);
  return log;
}

/** Resolves once `condition()` holds, checking it at each `event` of `target`. */
async function until(target: EventTarget, event: string, condition: () => boolean): Promise<void> {
  if (condition()) return;
  await new Promise<void>((resolve) => {
    const listener = () => {
      if (!condition()) return;
      target.removeEventListener(event, listener);
      resolve();
    };
    target.addEventListener(event, listener);
  });
}

const hardware = { cpus: 2, cpuModel: 'test cpu', memory: 8e9, freeMemory: 4e9, disk: 1e11, arch: 'x64', os: 'linux-x64-glibc2.36', libc: 'glibc2.36', load: [0.1, 0.2, 0.3] as [number, number, number], partitions: { total: 4, free: 4 } };

describe('node/adverts: the interval between periodic adverts', () => {
  it('varies at random within ADVERT_INTERVAL_JITTER of the interval, so nodes started together drift apart', () => {
    const delays = Array.from({ length: 1_000 }, () => jittered(15_000));
    for (const delay of delays) assert.ok(Math.abs(delay - 15_000) <= 15_000 * ADVERT_INTERVAL_JITTER, String(delay));
    // Spread over the whole range, not clustered: both ends' tenths are reached.
    assert.ok(Math.min(...delays) < 15_000 * (1 - 0.8 * ADVERT_INTERVAL_JITTER));
    assert.ok(Math.max(...delays) > 15_000 * (1 + 0.8 * ADVERT_INTERVAL_JITTER));
  });
});

describe('node/adverts: the advert service on real nodes', function () {
  this.timeout(15_000);
  const members: Member[] = [];
  const extra: Node[] = [];
  let a: Member;
  let b: Member;
  let c: Member;

  async function member(name: string, options: { start?: boolean; intervalMs?: number } = {}): Promise<Member> {
    const key = await generateKeyPair('Ed25519');
    const node = await createNode(key);
    const lines: string[] = [];
    const logged = new EventTarget();
    const table = new PeerTable({ ttlMs: 1_000 });
    const m = { name, id: node.peerId.toString(), key, node, table, lines, logged } as Member;
    m.content = { addresses: node.getMultiaddrs().map((ma) => ma.toString()), hardware, releases: [] };
    m.info = infoProtocol({ getAdvert: () => m.adverts.signed(), getOthers: (max) => m.adverts.known(max) })({ libp2p: node, logger: recordingLogger(lines, logged) });
    m.adverts = new AdvertService({
      key, peerId: m.id, table, intervalMs: options.intervalMs ?? 100,
      build: async () => structuredClone(m.content), log: recordingLogger(lines, logged),
    }, { pubsub: node.services.pubsub, info: m.info });
    await m.info.start();
    if (options.start ?? true) await m.adverts.start();
    members.push(m);
    return m;
  }

  const advertIn = (m: Member, of: Member): Advert | undefined => m.table.get(of.id)?.advert;
  const dropped = (m: Member) => m.lines.filter((line) => line.includes('dropped an advert'));

  before(async () => {
    [a, b, c] = await Promise.all([member('a'), member('b'), member('c')]);
    // a line: a — b — c, so that a and c hear of each other only through b's gossip
    await a.node.dial(b.node.getMultiaddrs()[0]!);
    await c.node.dial(b.node.getMultiaddrs()[0]!);
  });

  after(async () => {
    for (const m of members) await m.adverts.stop();
    for (const m of members) await m.info.stop();
    await Promise.all([...members.map((m) => m.node), ...extra].map((node) => node.stop()));
  });

  it('three nodes converge through gossip, relayed by the middle one', async () => {
    await Promise.all([a, b, c].map((m) => until(m.table, 'peer:updated', () => [a, b, c].every((o) => o === m || m.table.get(o.id)))));
    assert.equal(a.node.getConnections(c.node.peerId).length, 0, 'a and c are not connected');
    for (const m of [a, b, c]) {
      assert.deepEqual(m.table.list().map((p) => p.peerId), [a, b, c].filter((o) => o !== m).map((o) => o.id).sort());
    }
    const known = a.table.get(c.id)!;
    assert.deepEqual(known.advert.addresses, c.content.addresses);
    assert.deepEqual(known.advert.hardware, hardware);
    assert.deepEqual(await verifyAdvert(known.wire, { expectedPeer: c.id }), known.advert);
    assert.equal(a.table.get(a.id), undefined, 'not itself');
  });

  it('re-signs the same seq while nothing changes, and a new seq when the content does', async () => {
    const first = await verifyAdvert(a.adverts.current());
    await until(c.table, 'peer:updated', () => (advertIn(c, a)?.time ?? 0) > first.time);
    assert.equal(advertIn(c, a)?.seq, first.seq, 'same content, same seq');
    const cid = CID.create(1, raw.code, await sha256.digest(new TextEncoder().encode('hello'))).toString();
    a.content = { ...a.content, releases: [{ cid, name: 'hello' }] };
    await a.adverts.refresh();
    const second = await verifyAdvert(a.adverts.current());
    assert.ok(second.seq > first.seq);
    await until(c.table, 'peer:updated', () => (advertIn(c, a)?.seq ?? 0) >= second.seq);
    assert.deepEqual(advertIn(c, a)?.releases, [{ cid, name: 'hello' }]);
  });

  it('asks a peer directly, before start() and from a peer:connect hook', async () => {
    const d = await member('d', { start: false });
    await d.node.dial(a.node.getMultiaddrs()[0]!);
    await d.adverts.ask(a.id, { others: false });
    assert.equal(advertIn(d, a)?.peerId, a.id);
    assert.equal(advertIn(d, b), undefined, 'only the peer asked');
    const seenBefore = d.table.get(a.id)!.lastSeen;
    await d.adverts.ask(a.node.peerId); // an answer no newer than what we hold still counts as hearing from a
    assert.ok(d.table.get(a.id)!.lastSeen >= seenBefore);

    const e = await member('e', { start: false });
    e.node.addEventListener('peer:connect', e.adverts.onPeerConnect);
    await e.node.dial(b.node.getMultiaddrs()[0]!);
    await until(e.table, 'peer:updated', () => e.table.get(b.id) !== undefined);
    for (const m of [d, e]) {
      await m.info.stop();
      await m.node.stop();
      members.splice(members.indexOf(m), 1);
    }
  });

  it('learns from its first peers the adverts they hold of others, verified and dated by their signing time', async () => {
    await until(b.table, 'peer:updated', () => b.table.get(a.id) !== undefined && b.table.get(c.id) !== undefined);
    const f = await member('f', { start: false });
    await f.node.dial(b.node.getMultiaddrs()[0]!);
    await f.adverts.ask(b.id);
    for (const o of [a, b, c]) assert.equal(advertIn(f, o)?.peerId, o.id, `f knows ${o.name}`);
    const relayed = f.table.get(a.id)!;
    assert.equal(relayed.lastSeen, relayed.advert.time, 'a relayed advert is no sign of life');

    // a peer relaying a forged advert of a: f drops it, says so, and keeps what it had
    const rogueKey = await generateKeyPair('Ed25519');
    const rogue = await createNode(rogueKey);
    extra.push(rogue);
    const genuine = (await verifyAdvert(a.adverts.current()));
    const forged = new TextDecoder().decode(await signAdvert({ ...genuine, seq: genuine.seq + 1 }, a.key)).replace('\\"cpus\\":2', '\\"cpus\\":64');
    assert.ok(forged.includes('\\"cpus\\":64'));
    await rogue.handle(INFO_PROTOCOL, async (stream: Stream) => {
      const lp = lpStream(stream);
      await lp.read();
      const own = await signAdvert({ peerId: rogue.peerId.toString(), seq: 1, time: Date.now(), addresses: [], hardware, releases: [] }, rogueKey);
      await lp.writeV([own, new TextEncoder().encode('2'), new TextEncoder().encode(forged), new TextEncoder().encode('not an advert')]);
      await stream.close();
    });
    await f.node.dial(rogue.getMultiaddrs()[0]!);
    await f.adverts.ask(rogue.peerId.toString(), { others: true });
    const relayedBy = f.lines.filter((line) => line.includes(`relayed by ${rogue.peerId.toString()}`)).join('\n');
    assert.match(relayedBy, /bad signature/);
    assert.equal(advertIn(f, a)?.hardware.cpus, relayed.advert.hardware.cpus);
    await f.info.stop();
    await f.node.stop();
    members.splice(members.indexOf(f), 1);
  });

  it('drops garbled, oversized, unsigned and mis-signed adverts of a rogue node, and the others keep working', async () => {
    const rogueKey = await generateKeyPair('Ed25519');
    const rogue = await createNode(rogueKey);
    extra.push(rogue);
    const rogueId = rogue.peerId.toString();
    const pubsub = rogue.services.pubsub;
    pubsub.subscribe(ADVERT_TOPIC);
    await rogue.dial(b.node.getMultiaddrs()[0]!);
    await until(pubsub, 'subscription-change', () => pubsub.getSubscribers(ADVERT_TOPIC).some((p) => p.toString() === b.id));

    const own: Advert = { peerId: rogueId, seq: 1, time: Date.now(), addresses: [], hardware, releases: [] };
    const signed = new TextDecoder().decode(await signAdvert(own, rogueKey));
    const tampered = signed.replace('\\"cpus\\":2', '\\"cpus\\":2000');
    assert.notEqual(tampered, signed);
    const garbage: [string, Uint8Array][] = [
      ['not JSON', new TextEncoder().encode('this is not an advert')],
      ['unsigned', new TextEncoder().encode(JSON.stringify(own))],
      ['oversized', new Uint8Array(70 * 1024).fill(0x7b)],
      ['tampered', new TextEncoder().encode(tampered)],
      ['another node\'s advert', a.adverts.current()],
      ['from the future', await signAdvert({ ...own, time: Date.now() + 3_600_000 }, rogueKey)],
    ];
    const before = dropped(b).length;
    for (const [, data] of garbage) {
      // b's subscription may arrive before the rogue's stream to b is open: publish again after a heartbeat
      while (!(await pubsub.publish(ADVERT_TOPIC, data)).recipients.some((p) => p.toString() === b.id)) {
        await once(pubsub, 'gossipsub:heartbeat');
      }
    }
    await until(b.logged, 'line', () => dropped(b).length >= before + garbage.length);
    const reasons = dropped(b).slice(before).join('\n');
    for (const pattern of [/not JSON/, /unknown field/, /more than 65536/, /bad signature/, /came from/, /future/]) assert.match(reasons, pattern);
    assert.ok(dropped(b).slice(before).every((line) => line.includes(rogueId)));

    // the others keep working: a change of a's still reaches c through b
    a.content = { ...a.content, hardware: { ...hardware, cpus: 3 } };
    await a.adverts.refresh();
    const latest = await verifyAdvert(a.adverts.current());
    await until(c.table, 'peer:updated', () => (advertIn(c, a)?.seq ?? 0) >= latest.seq);
    assert.equal(advertIn(c, a)?.hardware.cpus, 3);
    for (const m of [a, b, c]) assert.equal(m.table.get(rogueId), undefined, `${m.name} has no entry for the rogue`);
    // b rejected them, so it passed none of them on
    assert.deepEqual(dropped(a), []);
    assert.deepEqual(dropped(c), []);
  });

  it('expires a node that went quiet', async () => {
    const expired = Promise.all([a, b].map((m) => until(m.table, 'peer:expired', () => m.table.get(c.id) === undefined)));
    await c.adverts.stop();
    await c.info.stop();
    await c.node.stop();
    members.splice(members.indexOf(c), 1);
    await expired;
    assert.deepEqual(a.table.list().map((p) => p.peerId), [b.id]);
  });
});
