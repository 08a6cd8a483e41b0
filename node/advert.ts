// A node's signed advert (design.md §4): who it is, where to reach it, its hardware and the releases it
// has built. On the wire (gossip and the info protocol) an advert is a signed document (node/signed.ts)
// of the node's own key, so anyone can check it whoever relayed it. Fields are validated (types, ranges,
// lengths, multiaddr, PeerId and CID syntax) before the signature is checked.
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { Hardware } from './hardware.js';
import { Fields, open, seal, signedBy, type Fail } from './signed.js';

/** Largest advert on the wire, wrapper and signature included. */
export const MAX_ADVERT_BYTES = 64 * 1024;
export const MAX_ADVERT_ADDRESSES = 64;
/** The schema allows this many; in practice MAX_ADVERT_BYTES binds first (about 500 releases). */
export const MAX_ADVERT_RELEASES = 10_000;
export const MAX_ADDRESS_LENGTH = 1024;
export const MAX_CID_LENGTH = 128;
export const MAX_RELEASE_NAME_LENGTH = 256;
/** How far in the future an advert's time may be (clocks of different machines differ). */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 60_000;

/** What a node says about its machine: what node/hardware.ts probes. */
export type AdvertHardware = Hardware;

export interface AdvertRelease {
  cid: string;
  name: string;
}

export interface Advert {
  peerId: string;
  /** Increases with each new advert content of a node (AdvertService uses max(previous + 1, clock ms)). */
  seq: number;
  /** When it was signed, ms since the epoch. */
  time: number;
  /** Full multiaddrs, each ending with /p2p/<peerId>. */
  addresses: string[];
  hardware: AdvertHardware;
  releases: AdvertRelease[];
}

/** Why an advert was refused. */
export type AdvertRejection =
  | 'too-large'
  | 'malformed'
  | 'schema'
  | 'peer-mismatch'
  | 'bad-signature'
  | 'future'
  | 'stale'
  | 'wrong-key';

/** Every refusal of an advert, with its reason (`reason`, and in words in `message`). */
export class AdvertError extends Error {
  override name = 'AdvertError';
  constructor(readonly reason: AdvertRejection, message: string) {
    super(message);
  }
}

export interface VerifyAdvertOptions {
  /** The PeerId the advert must be of: the gossip message's signer, or the peer we asked. */
  expectedPeer?: string;
  /** The local clock, ms since the epoch (default Date.now()). */
  now?: number;
  /** Default DEFAULT_MAX_CLOCK_SKEW_MS. */
  maxClockSkewMs?: number;
  /** Refuse adverts signed longer ago than this (plus the skew): replays of old gossip. Default: no limit. */
  maxAgeMs?: number;
}

/** Signs an advert with the node's key; the result is the wire form. */
export async function signAdvert(advert: Advert, key: PrivateKey): Promise<Uint8Array> {
  const clean = validateAdvert(advert);
  if (key.type !== 'Ed25519') throw new AdvertError('wrong-key', `adverts are signed with Ed25519 keys, not ${key.type}`);
  const signer = peerIdFromPrivateKey(key).toString();
  if (signer !== clean.peerId) throw new AdvertError('wrong-key', `advert of ${clean.peerId} cannot be signed by ${signer}`);
  const wire = await seal(clean, key);
  if (wire.byteLength > MAX_ADVERT_BYTES) {
    throw new AdvertError('too-large', `advert is ${wire.byteLength} bytes, more than ${MAX_ADVERT_BYTES}`);
  }
  return wire;
}

/** An advert whose wire form parsed and whose fields are valid, but whose signature is not checked yet. */
export interface UnverifiedAdvert {
  advert: Advert;
  payload: string;
  signature: Uint8Array;
}

/**
 * Parses an advert received from anyone (size, UTF-8, JSON, schema) without checking its signature:
 * enough to tell whether it is worth verifying. Throws AdvertError saying why it is refused.
 */
export function readAdvert(bytes: Uint8Array): UnverifiedAdvert {
  const { document, payload, signature } = open(bytes, MAX_ADVERT_BYTES, 'advert', fail, validateAdvert);
  return { advert: document, payload, signature };
}

/** Checks an advert received from anyone (wire bytes, or what readAdvert made of them); throws AdvertError saying why it is refused. */
export async function verifyAdvert(received: Uint8Array | UnverifiedAdvert, options: VerifyAdvertOptions = {}): Promise<Advert> {
  const { advert, payload, signature } = received instanceof Uint8Array ? readAdvert(received) : received;
  if (options.expectedPeer !== undefined && advert.peerId !== options.expectedPeer) {
    throw new AdvertError('peer-mismatch', `advert of ${advert.peerId} came from ${options.expectedPeer}`);
  }
  if (!(await signedBy(advert.peerId, payload, signature))) throw new AdvertError('bad-signature', `advert of ${advert.peerId} has a bad signature`);

  const now = options.now ?? Date.now();
  const skew = options.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
  if (advert.time > now + skew) {
    throw new AdvertError('future', `advert of ${advert.peerId} is dated ${advert.time - now} ms in the future (more than ${skew} ms)`);
  }
  if (options.maxAgeMs !== undefined && advert.time < now - options.maxAgeMs - skew) {
    throw new AdvertError('stale', `advert of ${advert.peerId} is ${now - advert.time} ms old (more than ${options.maxAgeMs + skew} ms)`);
  }
  return advert;
}

/**
 * Validates an advert's structure and returns a clean copy (keys in a fixed order, nothing else).
 * Throws AdvertError('schema') naming the first bad field.
 */
export function validateAdvert(value: unknown): Advert {
  const a = fields.object(value, 'advert', ['peerId', 'seq', 'time', 'addresses', 'hardware', 'releases']);
  const peerId = fields.peerId(a.peerId, 'peerId');
  const seq = fields.integer(a.seq, 'seq', 0, Number.MAX_SAFE_INTEGER);
  const time = fields.integer(a.time, 'time', 0, Number.MAX_SAFE_INTEGER);
  const addresses = fields.array(a.addresses, 'addresses', MAX_ADVERT_ADDRESSES).map((address, i) => validateAddress(address, `addresses[${i}]`, peerId));

  const h = fields.object(a.hardware, 'hardware', ['cpus', 'cpuModel', 'memory', 'freeMemory', 'disk', 'arch', 'os', 'libc', 'load', 'partitions']);
  const load = fields.array(h.load, 'hardware.load', 3);
  if (load.length !== 3) fields.schema('hardware.load must hold 3 numbers');
  const p = fields.object(h.partitions, 'hardware.partitions', ['total', 'free']);
  const partitions = { total: fields.integer(p.total, 'hardware.partitions.total', 0, 1_000_000), free: fields.integer(p.free, 'hardware.partitions.free', 0, 1_000_000) };
  if (partitions.free > partitions.total) fields.schema('hardware.partitions.free must not exceed hardware.partitions.total');
  const hardware: AdvertHardware = {
    cpus: fields.integer(h.cpus, 'hardware.cpus', 0, 1_000_000),
    cpuModel: fields.string(h.cpuModel, 'hardware.cpuModel', 256),
    memory: fields.number(h.memory, 'hardware.memory', 0, Number.MAX_SAFE_INTEGER),
    freeMemory: fields.number(h.freeMemory, 'hardware.freeMemory', 0, Number.MAX_SAFE_INTEGER),
    disk: fields.number(h.disk, 'hardware.disk', 0, Number.MAX_SAFE_INTEGER),
    arch: fields.string(h.arch, 'hardware.arch', 32),
    os: fields.string(h.os, 'hardware.os', 64),
    libc: fields.string(h.libc, 'hardware.libc', 64),
    load: [fields.number(load[0], 'hardware.load[0]', 0, 1e9), fields.number(load[1], 'hardware.load[1]', 0, 1e9), fields.number(load[2], 'hardware.load[2]', 0, 1e9)],
    partitions,
  };

  const releases = fields.array(a.releases, 'releases', MAX_ADVERT_RELEASES).map((release, i) => {
    const r = fields.object(release, `releases[${i}]`, ['cid', 'name']);
    return { cid: fields.cid(r.cid, `releases[${i}].cid`, MAX_CID_LENGTH), name: fields.string(r.name, `releases[${i}].name`, MAX_RELEASE_NAME_LENGTH) };
  });
  return { peerId, seq, time, addresses, hardware, releases };
}

const fail: Fail<AdvertRejection> = (reason, message) => {
  throw new AdvertError(reason, message);
};
const fields: Fields<AdvertRejection> = new Fields('advert', fail);

function validateAddress(value: unknown, path: string, peerId: string): string {
  const text = fields.string(value, path, MAX_ADDRESS_LENGTH);
  let components;
  try {
    components = multiaddr(text).getComponents();
  } catch (error) {
    fields.schema(`${path} is not a multiaddr (${(error as Error).message}): ${JSON.stringify(text)}`);
  }
  const last = components.at(-1);
  if (last?.name !== 'p2p' || last.value !== peerId) fields.schema(`${path} must end with /p2p/${peerId}: ${JSON.stringify(text)}`);
  return text;
}
