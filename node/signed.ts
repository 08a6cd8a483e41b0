// Signed JSON documents that travel between nodes (adverts, cache entries). On the wire:
//   {"payload": "<the document as a JSON string>", "signature": "<base64 Ed25519 signature>"}
// signed over the payload's UTF-8 bytes with the author's key; the author's Ed25519 PeerId embeds the public
// key, so anyone can check a document whoever relayed it. Everything received is untrusted: size-limited
// before it is parsed, validated field by field before the signature is checked. The checks here throw
// through a `fail` function, so each kind of document keeps its own error class.
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { CID } from 'multiformats/cid';

/** Why a signed document was refused (the reasons shared by every kind). */
export type SignedRejection = 'too-large' | 'malformed' | 'schema' | 'bad-signature';

export type Fail<R extends string> = (reason: R | SignedRejection, message: string) => never;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Signs a document (already validated) and returns its wire form. */
export async function seal(document: unknown, key: PrivateKey): Promise<Uint8Array> {
  const payload = JSON.stringify(document);
  const signature = await key.sign(encoder.encode(payload));
  return encoder.encode(JSON.stringify({ payload, signature: Buffer.from(signature).toString('base64') }));
}

/** A received document whose fields are valid, and its signature, not checked yet. */
export interface Opened<T> {
  document: T;
  payload: string;
  signature: Uint8Array;
}

/**
 * Parses a received wire form (size, UTF-8, JSON, wrapper), then the payload with `validate` (which returns a
 * clean copy), then the signature's encoding; `what` names the document in messages.
 */
export function open<T, R extends string>(bytes: Uint8Array, maxBytes: number, what: string, fail: Fail<R>, validate: (value: unknown) => T): Opened<T> {
  if (bytes.byteLength > maxBytes) fail('too-large', `${what} is ${bytes.byteLength} bytes, more than ${maxBytes}`);
  let text = '';
  try {
    text = decoder.decode(bytes);
  } catch {
    fail('malformed', `${what} is not UTF-8`);
  }
  const fields = new Fields(what, fail);
  const wrapper = fields.object(fields.json(text, what), what, ['payload', 'signature'], 'malformed');
  if (typeof wrapper.payload !== 'string') fail('malformed', `${what} payload must be a string`);
  const payload = wrapper.payload as string;
  const document = validate(fields.json(payload, `${what} payload`));
  return { document, payload, signature: decodeSignature(wrapper.signature, what, fail) };
}

/** Whether `signature` is `author`'s (an Ed25519 PeerId, checked by Fields.peerId) over `payload`. */
export async function signedBy(author: string, payload: string, signature: Uint8Array): Promise<boolean> {
  try {
    const publicKey = peerIdFromString(author).publicKey;
    return publicKey !== undefined && (await publicKey.verify(encoder.encode(payload), signature));
  } catch {
    return false;
  }
}

function decodeSignature<R extends string>(value: unknown, what: string, fail: Fail<R>): Uint8Array {
  if (typeof value !== 'string' || value.length > 128) fail('malformed', `${what} signature must be a base64 string`);
  const bytes = Buffer.from(value as string, 'base64');
  // Buffer's decoder skips what is not base64: insist on the canonical form.
  if (bytes.toString('base64') !== value || bytes.byteLength !== 64) {
    fail('malformed', `${what} signature must be 64 bytes in canonical base64`);
  }
  return new Uint8Array(bytes);
}

// C0 controls and DEL: strings of documents end up on people's terminals.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Field checks for one kind of document: each failure is `fail('schema', 'invalid <what>: …')`. */
export class Fields<R extends string> {
  constructor(private readonly what: string, private readonly fail: Fail<R>) {}

  schema(message: string): never {
    return this.fail('schema', `invalid ${this.what}: ${message}`);
  }

  json(text: string, what: string): unknown {
    try {
      return JSON.parse(text);
    } catch {
      return this.fail('malformed', `${what} is not JSON`);
    }
  }

  /** An object with exactly these keys. */
  object(value: unknown, path: string, keys: readonly string[], reason: R | SignedRejection = 'schema'): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail(reason, `invalid ${this.what}: ${path} must be an object`);
    }
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!keys.includes(key)) this.fail(reason, `invalid ${this.what}: ${path} has an unknown field ${JSON.stringify(key)}`);
    }
    for (const key of keys) {
      if (!Object.hasOwn(record, key)) this.fail(reason, `invalid ${this.what}: ${path} lacks ${JSON.stringify(key)}`);
    }
    return record;
  }

  array(value: unknown, path: string, max: number): unknown[] {
    if (!Array.isArray(value)) this.schema(`${path} must be an array`);
    if (value.length > max) this.schema(`${path} holds ${value.length} items, more than ${max}`);
    return value;
  }

  string(value: unknown, path: string, max: number): string {
    if (typeof value !== 'string') this.schema(`${path} must be a string`);
    if (value.length > max) this.schema(`${path} is ${value.length} characters long, more than ${max}`);
    if (CONTROL.test(value)) this.schema(`${path} holds control characters`);
    return value;
  }

  number(value: unknown, path: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      this.schema(`${path} must be a number from ${min} to ${max}`);
    }
    return value;
  }

  integer(value: unknown, path: string, min: number, max: number): number {
    if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
      this.schema(`${path} must be an integer from ${min} to ${max}`);
    }
    return value as number;
  }

  boolean(value: unknown, path: string): boolean {
    if (typeof value !== 'boolean') this.schema(`${path} must be true or false`);
    return value;
  }

  /** An Ed25519 PeerId in its canonical spelling (so comparisons with other PeerIds are exact). */
  peerId(value: unknown, path: string): string {
    const text = this.string(value, path, 128);
    let id;
    try {
      id = peerIdFromString(text);
    } catch {
      this.schema(`${path} is not a PeerId: ${JSON.stringify(text)}`);
    }
    if (id.type !== 'Ed25519') this.schema(`${path} must be an Ed25519 PeerId, not ${id.type}`);
    if (id.toString() !== text) this.schema(`${path} is not in its canonical form (${id.toString()})`);
    return text;
  }

  cid(value: unknown, path: string, max: number): string {
    const text = this.string(value, path, max);
    try {
      CID.parse(text);
    } catch {
      this.schema(`${path} is not a CID: ${JSON.stringify(text)}`);
    }
    return text;
  }
}
