import { strict as assert } from 'node:assert';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { sha256 } from 'multiformats/hashes/sha2';
import {
  AdvertError, MAX_ADVERT_BYTES, signAdvert, verifyAdvert, type Advert, type AdvertRejection,
} from '../../node/advert.js';

const encoder = new TextEncoder();
const NOW = 1_800_000_000_000;

async function cidOf(text: string): Promise<string> {
  return CID.create(1, raw.code, await sha256.digest(encoder.encode(text))).toString();
}

function sample(peerId: string, cid: string): Advert {
  return {
    peerId,
    seq: 7,
    time: NOW,
    addresses: [`/ip4/127.0.0.1/tcp/4001/p2p/${peerId}`, `/ip6/::1/tcp/4001/p2p/${peerId}`],
    hardware: {
      cpus: 2, cpuModel: 'AMD EPYC', memory: 8 * 1024 ** 3, freeMemory: 4 * 1024 ** 3, disk: 100 * 1024 ** 3,
      arch: 'x64', os: 'linux-x64-glibc2.36', libc: 'glibc2.36', load: [0.5, 0.25, 0.1], partitions: { total: 50, free: 48 },
    },
    releases: [{ cid, name: 'hello' }],
  };
}

/** Signs any payload as signAdvert would, but without validating it first. */
async function signRaw(payload: unknown, key: PrivateKey): Promise<Uint8Array> {
  const text = JSON.stringify(payload);
  const signature = await key.sign(encoder.encode(text));
  return encoder.encode(JSON.stringify({ payload: text, signature: Buffer.from(signature).toString('base64') }));
}

async function rejects(promise: Promise<unknown>, reason: AdvertRejection, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: Error) => {
    assert.equal(error.name, 'AdvertError');
    assert.equal((error as AdvertError).reason, reason, error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

describe('node/advert', () => {
  let key: PrivateKey;
  let other: PrivateKey;
  let peerId: string;
  let cid: string;
  let advert: Advert;

  before(async () => {
    key = await generateKeyPair('Ed25519');
    other = await generateKeyPair('Ed25519');
    peerId = peerIdFromPrivateKey(key).toString();
    cid = await cidOf('hello release');
    advert = sample(peerId, cid);
  });

  it('signs and verifies an advert', async () => {
    const wire = await signAdvert(advert, key);
    assert.deepEqual(await verifyAdvert(wire, { now: NOW, expectedPeer: peerId }), advert);
    const outer = JSON.parse(new TextDecoder().decode(wire)) as { payload: string; signature: string };
    assert.deepEqual(Object.keys(outer), ['payload', 'signature']);
    assert.deepEqual(JSON.parse(outer.payload), advert);
    assert.equal(Buffer.from(outer.signature, 'base64').byteLength, 64);
    assert.equal(await key.publicKey.verify(encoder.encode(outer.payload), Buffer.from(outer.signature, 'base64')), true);
  });

  it('refuses a tampered payload', async () => {
    const outer = JSON.parse(new TextDecoder().decode(await signAdvert(advert, key))) as { payload: string; signature: string };
    const payload = outer.payload.replace('"cpus":2', '"cpus":64');
    assert.notEqual(payload, outer.payload);
    await rejects(verifyAdvert(encoder.encode(JSON.stringify({ ...outer, payload })), { now: NOW }), 'bad-signature');
  });

  it('refuses an advert signed by another key', async () => {
    await rejects(verifyAdvert(await signRaw(advert, other), { now: NOW }), 'bad-signature');
    await rejects(signAdvert(advert, other), 'wrong-key');
  });

  it('refuses an advert of another peer than expected', async () => {
    const wire = await signAdvert(advert, key);
    await rejects(verifyAdvert(wire, { now: NOW, expectedPeer: peerIdFromPrivateKey(other).toString() }), 'peer-mismatch');
  });

  it('refuses oversized adverts before parsing them', async () => {
    const big = new Uint8Array(MAX_ADVERT_BYTES + 1).fill(0x20);
    await rejects(verifyAdvert(big), 'too-large');
    const releases = Array.from({ length: 1_000 }, (_, i) => ({ cid, name: `release-${i}` }));
    await rejects(signAdvert({ ...advert, releases }, key), 'too-large');
  });

  it('refuses garbled bytes', async () => {
    await rejects(verifyAdvert(encoder.encode('not json')), 'malformed');
    await rejects(verifyAdvert(new Uint8Array([0xff, 0xfe, 0x7b])), 'malformed', /UTF-8/);
    await rejects(verifyAdvert(encoder.encode('[]')), 'malformed');
    await rejects(verifyAdvert(encoder.encode(JSON.stringify(advert))), 'malformed', /unknown field/);
    const outer = JSON.parse(new TextDecoder().decode(await signAdvert(advert, key))) as { payload: string; signature: string };
    await rejects(verifyAdvert(encoder.encode(JSON.stringify({ payload: outer.payload }))), 'malformed', /signature/);
    await rejects(verifyAdvert(encoder.encode(JSON.stringify({ ...outer, signature: outer.signature.slice(4) }))), 'malformed');
    await rejects(verifyAdvert(encoder.encode(JSON.stringify({ ...outer, signature: `${outer.signature}!` }))), 'malformed');
    await rejects(verifyAdvert(encoder.encode(JSON.stringify({ ...outer, payload: '{"peerId": ' }))), 'malformed');
  });

  it('refuses bad multiaddrs', async () => {
    for (const address of ['/ip4/999.0.0.1/tcp/1', 'garbage', `/ip4/127.0.0.1/tcp/99999/p2p/${peerId}`]) {
      await rejects(verifyAdvert(await signRaw({ ...advert, addresses: [address] }, key), { now: NOW }), 'schema', /addresses\[0\]/);
    }
    // an address of somebody else, and one without its PeerId
    const stranger = `/ip4/127.0.0.1/tcp/1/p2p/${peerIdFromPrivateKey(other).toString()}`;
    await rejects(verifyAdvert(await signRaw({ ...advert, addresses: [stranger] }, key), { now: NOW }), 'schema', /must end with/);
    await rejects(verifyAdvert(await signRaw({ ...advert, addresses: ['/ip4/127.0.0.1/tcp/1'] }, key), { now: NOW }), 'schema', /must end with/);
  });

  it('refuses adverts that break the schema', async () => {
    const { hardware } = advert;
    const bad: [string, unknown][] = [
      ['missing field', (({ releases: _, ...rest }) => rest)(advert)],
      ['extra field', { ...advert, admin: true }],
      ['negative seq', { ...advert, seq: -1 }],
      ['fractional seq', { ...advert, seq: 1.5 }],
      ['string time', { ...advert, time: String(NOW) }],
      ['unsafe integer', { ...advert, seq: 2 ** 60 }],
      ['addresses not an array', { ...advert, addresses: 'x' }],
      ['65 addresses', { ...advert, addresses: Array(65).fill(advert.addresses[0]) }],
      ['too long address', { ...advert, addresses: [`/dns4/${'a'.repeat(1100)}/tcp/1/p2p/${peerId}`] }],
      ['cpus a string', { ...advert, hardware: { ...hardware, cpus: '2' } }],
      ['NaN memory', { ...advert, hardware: { ...hardware, memory: null } }],
      ['load of 2', { ...advert, hardware: { ...hardware, load: [1, 2] } }],
      ['negative load', { ...advert, hardware: { ...hardware, load: [1, -2, 3] } }],
      ['free partitions above total', { ...advert, hardware: { ...hardware, partitions: { total: 1, free: 2 } } }],
      ['extra hardware field', { ...advert, hardware: { ...hardware, gpu: 'x' } }],
      ['control characters', { ...advert, hardware: { ...hardware, cpuModel: 'EPYC\u001b[2J' } }],
      ['long cpu model', { ...advert, hardware: { ...hardware, cpuModel: 'x'.repeat(257) } }],
      ['bad CID', { ...advert, releases: [{ cid: 'not-a-cid', name: 'x' }] }],
      ['release with extra field', { ...advert, releases: [{ cid, name: 'x', url: 'http://x' }] }],
      ['release name too long', { ...advert, releases: [{ cid, name: 'n'.repeat(257) }] }],
      ['releases an object', { ...advert, releases: {} }],
    ];
    for (const [what, payload] of bad) {
      await assert.rejects(verifyAdvert(await signRaw(payload, key), { now: NOW }), (error: Error) => {
        assert.equal((error as AdvertError).reason, 'schema', `${what}: ${error.message}`);
        return true;
      }, what);
    }
  });

  it('refuses a bad PeerId', async () => {
    for (const id of ['', 'nobody', 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N']) {
      await rejects(verifyAdvert(await signRaw({ ...advert, peerId: id, addresses: [] }, key), { now: NOW }), 'schema', /peerId/);
    }
    const secp = await generateKeyPair('secp256k1');
    const secpId = peerIdFromPrivateKey(secp).toString();
    await rejects(verifyAdvert(await signRaw({ ...advert, peerId: secpId, addresses: [] }, secp), { now: NOW }), 'schema', /Ed25519/);
  });

  it('refuses adverts from the future, and old ones when asked to', async () => {
    const wire = await signAdvert({ ...advert, time: NOW + 120_000 }, key);
    await rejects(verifyAdvert(wire, { now: NOW }), 'future');
    await verifyAdvert(wire, { now: NOW, maxClockSkewMs: 200_000 });
    const old = await signAdvert(advert, key);
    await rejects(verifyAdvert(old, { now: NOW + 300_000, maxAgeMs: 60_000, maxClockSkewMs: 1_000 }), 'stale');
    await verifyAdvert(old, { now: NOW + 300_000 });
  });
});
