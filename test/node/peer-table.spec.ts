import { strict as assert } from 'node:assert';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Advert } from '../../node/advert.js';
import { PeerTable, type KnownPeer } from '../../node/peer-table.js';

function advertOf(peerId: string, seq: number, time: number): Advert {
  return {
    peerId, seq, time, addresses: [],
    hardware: { cpus: 1, cpuModel: '', memory: 1, freeMemory: 1, disk: 1, arch: 'x64', os: 'linux', libc: 'glibc', load: [0, 0, 0], partitions: { total: 1, free: 1 } },
    releases: [],
  };
}

describe('node/peer-table', () => {
  let ids: string[];
  let clock: number;
  let table: PeerTable;
  let updated: KnownPeer[];
  let expired: string[];
  const wire = new Uint8Array([1]);

  before(async () => {
    ids = await Promise.all([1, 2, 3].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()));
  });

  beforeEach(() => {
    clock = 1_000;
    table = new PeerTable({ ttlMs: 100, now: () => clock });
    updated = [];
    expired = [];
    table.addEventListener('peer:updated', (event) => updated.push(event.detail));
    table.addEventListener('peer:expired', (event) => expired.push(event.detail));
  });

  it('dates a relayed advert by the time given, and refuses one seen longer than the TTL ago', () => {
    const [a, b] = ids as [string, string];
    assert.equal(table.offer(advertOf(a, 1, 950), wire, 950), true);
    assert.equal(table.get(a)?.lastSeen, 950);
    assert.deepEqual(table.expire(), []);
    clock = 1_051;
    assert.deepEqual(table.expire(), [a], 'a relayed copy did not keep it alive past its TTL');
    assert.equal(table.offer(advertOf(b, 1, 800), wire, 800), false, 'older than the TTL already');
    assert.equal(table.get(b), undefined);
  });

  it('keeps only newer adverts: a higher seq, or the same seq signed later', () => {
    const [a] = ids as [string];
    assert.equal(table.offer(advertOf(a, 5, 10), wire), true);
    assert.equal(table.offer(advertOf(a, 4, 99), wire), false, 'older seq');
    assert.equal(table.offer(advertOf(a, 5, 10), wire), false, 'the same advert again (a replay)');
    assert.equal(table.offer(advertOf(a, 5, 9), wire), false, 'same seq, older time');
    clock = 1_050;
    assert.equal(table.offer(advertOf(a, 5, 11), wire), true, 'same seq, newer time');
    assert.equal(table.get(a)?.lastSeen, 1_050);
    assert.equal(table.offer(advertOf(a, 6, 1), wire), true, 'higher seq, whatever its time');
    assert.deepEqual(updated.map((p) => [p.advert.seq, p.advert.time]), [[5, 10], [5, 11], [6, 1]]);
    assert.equal(table.get(a)?.advert.seq, 6);
    assert.equal(table.get(a)?.wire, wire);
  });

  it('lists peers sorted by PeerId', () => {
    for (const id of [...ids].reverse()) table.offer(advertOf(id, 1, 1), wire);
    assert.deepEqual(table.list().map((p) => p.peerId), [...ids].sort());
    assert.equal(table.size, 3);
  });

  it('expires peers silent for longer than the TTL; touch keeps one alive', () => {
    const [a, b, c] = ids as [string, string, string];
    table.offer(advertOf(a, 1, 1), wire);
    table.offer(advertOf(b, 1, 1), wire);
    clock = 1_060;
    table.offer(advertOf(c, 1, 1), wire);
    clock = 1_100;
    assert.deepEqual(table.expire(), [], 'exactly ttlMs old is still alive');
    table.touch(b);
    clock = 1_101;
    assert.deepEqual(table.expire(), [a]);
    assert.deepEqual(expired, [a]);
    assert.equal(table.get(a), undefined);
    clock = 1_201;
    assert.deepEqual(table.expire().sort(), [b, c].sort());
    assert.equal(table.size, 0);
    table.touch(a); // unknown peers are not added
    assert.equal(table.size, 0);
    assert.equal(table.offer(advertOf(a, 1, 1), wire), true, 'an expired peer comes back with any advert');
  });

  it('touch does not change the advert or emit', () => {
    const [a] = ids as [string];
    table.offer(advertOf(a, 3, 3), wire);
    clock = 2_000;
    table.touch(a);
    assert.equal(table.get(a)?.lastSeen, 2_000);
    assert.equal(table.get(a)?.advert.seq, 3);
    assert.equal(updated.length, 1);
  });

  it('remove forgets a peer without an event, and maxPeers bounds new peers', () => {
    const [a, b, c] = ids as [string, string, string];
    const small = new PeerTable({ ttlMs: 100, now: () => clock, maxPeers: 2 });
    assert.equal(small.offer(advertOf(a, 1, 1), wire), true);
    assert.equal(small.offer(advertOf(b, 1, 1), wire), true);
    assert.equal(small.offer(advertOf(c, 1, 1), wire), false);
    assert.equal(small.offer(advertOf(a, 2, 1), wire), true, 'known peers still update');
    small.remove(a);
    assert.equal(small.get(a), undefined);
    assert.equal(small.offer(advertOf(c, 1, 1), wire), true);
  });
});
