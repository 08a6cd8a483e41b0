// A node's signed advert (design.md §4): who it is, where to reach it, its hardware and the releases it
// has built. On the wire (gossip and the info protocol) an advert is UTF-8 JSON
//   {"payload": "<the advert as a JSON string>", "signature": "<base64 Ed25519 signature>"}
// signed over the payload's UTF-8 bytes with the node's own key, so anyone can check it with the public
// key embedded in the advert's Ed25519 PeerId, whoever relayed it. Everything received is untrusted: it is
// size-limited before it is parsed, and validated field by field (types, ranges, lengths, multiaddr,
// PeerId and CID syntax) before the signature is checked.
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { CID } from 'multiformats/cid';
import type { Hardware } from './hardware.js';

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
  const payload = JSON.stringify(clean);
  const signature = await key.sign(encoder.encode(payload));
  const wire = encoder.encode(JSON.stringify({ payload, signature: Buffer.from(signature).toString('base64') }));
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
  if (bytes.byteLength > MAX_ADVERT_BYTES) {
    throw new AdvertError('too-large', `advert is ${bytes.byteLength} bytes, more than ${MAX_ADVERT_BYTES}`);
  }
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new AdvertError('malformed', 'advert is not UTF-8');
  }
  const wrapper = object(parseJson(text, 'advert'), 'advert', ['payload', 'signature'], 'malformed');
  const payload = wrapper.payload;
  if (typeof payload !== 'string') throw new AdvertError('malformed', 'advert payload must be a string');
  const advert = validateAdvert(parseJson(payload, 'advert payload'));
  return { advert, payload, signature: decodeSignature(wrapper.signature) };
}

/** Checks an advert received from anyone (wire bytes, or what readAdvert made of them); throws AdvertError saying why it is refused. */
export async function verifyAdvert(received: Uint8Array | UnverifiedAdvert, options: VerifyAdvertOptions = {}): Promise<Advert> {
  const { advert, payload, signature } = received instanceof Uint8Array ? readAdvert(received) : received;
  if (options.expectedPeer !== undefined && advert.peerId !== options.expectedPeer) {
    throw new AdvertError('peer-mismatch', `advert of ${advert.peerId} came from ${options.expectedPeer}`);
  }
  // validateAdvert made sure this is an Ed25519 PeerId, which embeds its public key.
  const publicKey = peerIdFromString(advert.peerId).publicKey;
  let valid = false;
  try {
    valid = publicKey !== undefined && (await publicKey.verify(encoder.encode(payload), signature));
  } catch {
    valid = false;
  }
  if (!valid) throw new AdvertError('bad-signature', `advert of ${advert.peerId} has a bad signature`);

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
  const a = object(value, 'advert', ['peerId', 'seq', 'time', 'addresses', 'hardware', 'releases']);
  const peerId = validatePeerId(a.peerId);
  const seq = integer(a.seq, 'seq', 0, Number.MAX_SAFE_INTEGER);
  const time = integer(a.time, 'time', 0, Number.MAX_SAFE_INTEGER);
  const addresses = array(a.addresses, 'addresses', MAX_ADVERT_ADDRESSES).map((address, i) => validateAddress(address, `addresses[${i}]`, peerId));

  const h = object(a.hardware, 'hardware', ['cpus', 'cpuModel', 'memory', 'freeMemory', 'disk', 'arch', 'os', 'libc', 'load', 'partitions']);
  const load = array(h.load, 'hardware.load', 3);
  if (load.length !== 3) schema('hardware.load must hold 3 numbers');
  const p = object(h.partitions, 'hardware.partitions', ['total', 'free']);
  const partitions = { total: integer(p.total, 'hardware.partitions.total', 0, 1_000_000), free: integer(p.free, 'hardware.partitions.free', 0, 1_000_000) };
  if (partitions.free > partitions.total) schema('hardware.partitions.free must not exceed hardware.partitions.total');
  const hardware: AdvertHardware = {
    cpus: integer(h.cpus, 'hardware.cpus', 0, 1_000_000),
    cpuModel: string(h.cpuModel, 'hardware.cpuModel', 256),
    memory: number(h.memory, 'hardware.memory', 0, Number.MAX_SAFE_INTEGER),
    freeMemory: number(h.freeMemory, 'hardware.freeMemory', 0, Number.MAX_SAFE_INTEGER),
    disk: number(h.disk, 'hardware.disk', 0, Number.MAX_SAFE_INTEGER),
    arch: string(h.arch, 'hardware.arch', 32),
    os: string(h.os, 'hardware.os', 64),
    libc: string(h.libc, 'hardware.libc', 64),
    load: [number(load[0], 'hardware.load[0]', 0, 1e9), number(load[1], 'hardware.load[1]', 0, 1e9), number(load[2], 'hardware.load[2]', 0, 1e9)],
    partitions,
  };

  const releases = array(a.releases, 'releases', MAX_ADVERT_RELEASES).map((release, i) => {
    const r = object(release, `releases[${i}]`, ['cid', 'name']);
    const cid = string(r.cid, `releases[${i}].cid`, MAX_CID_LENGTH);
    try {
      CID.parse(cid);
    } catch {
      schema(`releases[${i}].cid is not a CID: ${JSON.stringify(cid)}`);
    }
    return { cid, name: string(r.name, `releases[${i}].name`, MAX_RELEASE_NAME_LENGTH) };
  });
  return { peerId, seq, time, addresses, hardware, releases };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function schema(message: string): never {
  throw new AdvertError('schema', `invalid advert: ${message}`);
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new AdvertError('malformed', `${what} is not JSON`);
  }
}

function decodeSignature(value: unknown): Uint8Array {
  if (typeof value !== 'string' || value.length > 128) throw new AdvertError('malformed', 'advert signature must be a base64 string');
  const bytes = Buffer.from(value, 'base64');
  // Buffer's decoder skips what is not base64: insist on the canonical form.
  if (bytes.toString('base64') !== value || bytes.byteLength !== 64) {
    throw new AdvertError('malformed', 'advert signature must be 64 bytes in canonical base64');
  }
  return new Uint8Array(bytes);
}

function validatePeerId(value: unknown): string {
  const text = string(value, 'peerId', 128);
  let id;
  try {
    id = peerIdFromString(text);
  } catch {
    schema(`peerId is not a PeerId: ${JSON.stringify(text)}`);
  }
  if (id.type !== 'Ed25519') schema(`peerId must be an Ed25519 PeerId, not ${id.type}`);
  // One spelling per peer, so that comparisons with other PeerIds are exact.
  if (id.toString() !== text) schema(`peerId is not in its canonical form (${id.toString()})`);
  return text;
}

function validateAddress(value: unknown, path: string, peerId: string): string {
  const text = string(value, path, MAX_ADDRESS_LENGTH);
  let components;
  try {
    components = multiaddr(text).getComponents();
  } catch (error) {
    schema(`${path} is not a multiaddr (${(error as Error).message}): ${JSON.stringify(text)}`);
  }
  const last = components.at(-1);
  if (last?.name !== 'p2p' || last.value !== peerId) schema(`${path} must end with /p2p/${peerId}: ${JSON.stringify(text)}`);
  return text;
}

function object(value: unknown, path: string, keys: readonly string[], reason: AdvertRejection = 'schema'): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AdvertError(reason, `invalid advert: ${path} must be an object`);
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!keys.includes(key)) throw new AdvertError(reason, `invalid advert: ${path} has an unknown field ${JSON.stringify(key)}`);
  }
  for (const key of keys) {
    if (!Object.hasOwn(record, key)) throw new AdvertError(reason, `invalid advert: ${path} lacks ${JSON.stringify(key)}`);
  }
  return record;
}

function array(value: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(value)) schema(`${path} must be an array`);
  if (value.length > max) schema(`${path} holds ${value.length} items, more than ${max}`);
  return value;
}

// C0 controls and DEL: advert strings end up on people's terminals (`slapmesh peers`).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function string(value: unknown, path: string, max: number): string {
  if (typeof value !== 'string') schema(`${path} must be a string`);
  if (value.length > max) schema(`${path} is ${value.length} characters long, more than ${max}`);
  if (CONTROL.test(value)) schema(`${path} holds control characters`);
  return value;
}

function number(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    schema(`${path} must be a number from ${min} to ${max}`);
  }
  return value;
}

function integer(value: unknown, path: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    schema(`${path} must be an integer from ${min} to ${max}`);
  }
  return value as number;
}
