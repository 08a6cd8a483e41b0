// The instance protocol's messages: their types, and strict checks used on both sides (a handler checks
// requests and its service's answers, a client its own requests and the answers it gets).
import { parseBlobCid } from '../../node/cache/cid.js';
import type { InstanceRequest, RequestedState } from '../../node/store.js';
import {
  MAX_CONNECTION_BYTES, MAX_CONNECTION_KEY_LENGTH, MAX_MESSAGE_BYTES, MAX_PARAMETERS_BYTES, MAX_PARAMETERS_DEPTH, MAX_REFERENCE_LENGTH,
  MAX_RELEASE_LENGTH, MAX_RENEW_INSTANCES, MAX_STATUS_LENGTH, MAX_TYPE_LENGTH,
} from './constants.js';

export type { InstanceRequest, RequestedState };

/** Why a call was not done: `refused` (trust, capacity, policy), `not-found`, `stale` (a newer epoch exists), `invalid`, `busy` (try later). */
export type RefusalCode = 'refused' | 'not-found' | 'stale' | 'invalid' | 'busy';

export interface InstanceRefusal {
  ok: false;
  code: RefusalCode;
  /** Why, in words (at most MAX_MESSAGE_BYTES). */
  reason: string;
}

/** No field besides `ok`. */
export type Empty = Record<never, never>;

/** Every answer: done (with the op's fields) or refused. A refusal is a value, not an error. */
export type Answer<T extends object = Empty> = ({ ok: true } & T) | InstanceRefusal;

/** An instance as its host shows it to its owner. `epoch` is 0 while it is only reserved. */
export interface InstanceView extends InstanceRequest {
  epoch: number;
  /** `reserved`, `deploying`, `ready`, `error`, `stopped`… */
  status: string;
  message?: string;
  connection: Record<string, string>;
}

/** A re-request of an instance where it is placed: the request, with the placement's epoch. */
export interface InstanceUpdate extends InstanceRequest {
  epoch: number;
}

/** A placement: which instance, with which epoch. */
export interface InstancePlacement {
  reference: string;
  epoch: number;
}

/** What a host tells an owner about one of its instances. */
export interface InstanceReport {
  reference: string;
  epoch: number;
  status: string;
  message?: string;
  connection: Record<string, string>;
}

/** Each op and the fields of its answer when done. */
export interface InstanceResults {
  /** `free`: the host's partitions still free once this one is held (the owner's index learns it at no cost). */
  reserve: { lease: number; free?: number };
  confirm: Empty;
  update: { instance: InstanceView };
  status: { instance: InstanceView };
  renew: { unknown: string[] };
  list: { instances: InstanceView[] };
  report: Empty;
  check: { current: boolean };
}

export type InstanceOp = keyof InstanceResults;

/** A request on the wire. */
export type InstanceMessage =
  | ({ op: 'reserve' } & InstanceRequest)
  | { op: 'confirm'; reference: string; epoch: number }
  | ({ op: 'update' } & InstanceUpdate)
  | { op: 'status'; reference: string }
  | { op: 'renew'; instances: InstancePlacement[] }
  | { op: 'list' }
  | ({ op: 'report' } & InstanceReport)
  | { op: 'check'; reference: string; epoch: number };

export type MessageOf<O extends InstanceOp> = Extract<InstanceMessage, { op: O }>;
export type AnswerOf<O extends InstanceOp> = Answer<InstanceResults[O]>;

/** Why a value does not fit, or undefined when it does. */
type Check = (value: unknown) => string | undefined;

const STATES: readonly string[] = ['started', 'stopped', 'destroyed'] satisfies RequestedState[];
const CODES: readonly string[] = ['refused', 'not-found', 'stale', 'invalid', 'busy'] satisfies RefusalCode[];
/** Printable: no control, format (bidi overrides, invisible), lone surrogate or line/paragraph separator characters. */
const REFERENCE = new RegExp(`^[^\\p{Cc}\\p{Cf}\\p{Cs}\\p{Zl}\\p{Zp}]{1,${MAX_REFERENCE_LENGTH}}$`, 'u');
const CONNECTION_KEY = new RegExp(`^[^\\p{Cc}\\p{Cf}\\p{Cs}\\p{Zl}\\p{Zp}]{1,${MAX_CONNECTION_KEY_LENGTH}}$`, 'u');
const TYPE = new RegExp(`^[A-Za-z0-9._-]{1,${MAX_TYPE_LENGTH}}$`);
const STATUS = new RegExp(`^[A-Za-z0-9._-]{1,${MAX_STATUS_LENGTH}}$`);
/** What free text (a message, a reason) may not hold: it ends up on terminals. Tabs and newlines may stay. */
const NOT_TEXT = /(?![\t\n])[\p{Cc}\p{Cs}]/u;
const NOT_TEXT_ALL = /(?![\t\n])[\p{Cc}\p{Cs}]/gu;

const byteLength = (text: string) => Buffer.byteLength(text, 'utf8');

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

/** An object with exactly `fields` (and those of `optional` that are present). */
function object(fields: Record<string, Check>, optional: Record<string, Check> = {}): Check {
  return (value) => {
    if (!isPlainObject(value)) return 'not a JSON object';
    for (const key of Object.keys(value)) {
      if (!Object.hasOwn(fields, key) && !Object.hasOwn(optional, key)) return `unknown field ${JSON.stringify(key.slice(0, 64))}`;
    }
    for (const [key, check] of Object.entries(fields)) {
      if (!Object.hasOwn(value, key)) return `${key} missing`;
      const problem = check(value[key]);
      if (problem !== undefined) return `${key}: ${problem}`;
    }
    for (const [key, check] of Object.entries(optional)) {
      const problem = Object.hasOwn(value, key) ? check(value[key]) : undefined;
      if (problem !== undefined) return `${key}: ${problem}`;
    }
    return undefined;
  };
}

function arrayOf(check: Check, max = Infinity): Check {
  return (value) => {
    if (!Array.isArray(value)) return 'not an array';
    if (value.length > max) return `more than ${max} items`;
    for (const [i, item] of value.entries()) {
      const problem = check(item);
      if (problem !== undefined) return `[${i}]: ${problem}`;
    }
    return undefined;
  };
}

const anything: Check = () => undefined;

const reference: Check = (value) =>
  typeof value === 'string' && REFERENCE.test(value) ? undefined : `not a string of 1 to ${MAX_REFERENCE_LENGTH} printable characters`;

const release: Check = (value) => {
  if (typeof value !== 'string' || value.length > MAX_RELEASE_LENGTH) return `not a string of at most ${MAX_RELEASE_LENGTH} characters`;
  try {
    // One spelling per release: a CID in another base would name the same bundle under another key.
    return parseBlobCid(value) === value ? undefined : 'not a CID in its canonical form';
  } catch {
    return 'not a release CID (CIDv1, raw, sha256)';
  }
};

const type: Check = (value) => typeof value === 'string' && TYPE.test(value) ? undefined : `not 1 to ${MAX_TYPE_LENGTH} of [A-Za-z0-9._-]`;

const state: Check = (value) => typeof value === 'string' && STATES.includes(value) ? undefined : `not one of ${STATES.join(', ')}`;

function integer(min: number): Check {
  return (value) => Number.isSafeInteger(value) && (value as number) >= min ? undefined : `not an integer from ${min} up`;
}

const epoch = integer(1);

const status: Check = (value) => typeof value === 'string' && STATUS.test(value) ? undefined : `not 1 to ${MAX_STATUS_LENGTH} of [A-Za-z0-9._-]`;

function text(min: number): Check {
  return (value) => {
    if (typeof value !== 'string' || value.length < min || byteLength(value) > MAX_MESSAGE_BYTES) return `not a string of ${min} to ${MAX_MESSAGE_BYTES} bytes`;
    return NOT_TEXT.test(value) ? 'holds control characters' : undefined;
  };
}

/** A JSON value (finite numbers, plain objects), nested at most MAX_PARAMETERS_DEPTH deep. */
function jsonValue(value: unknown, depth: number): string | undefined {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : 'a number that is not finite';
  if (depth === MAX_PARAMETERS_DEPTH) return `nested more than ${MAX_PARAMETERS_DEPTH} deep`;
  const items = Array.isArray(value) ? value : isPlainObject(value) ? Object.values(value) : undefined;
  if (items === undefined) return `a ${typeof value}, not a JSON value`;
  for (const item of items) {
    const problem = jsonValue(item, depth + 1);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

const parameters: Check = (value) => {
  if (!isPlainObject(value)) return 'not a JSON object';
  const problem = jsonValue(value, 0);
  if (problem !== undefined) return problem;
  return byteLength(JSON.stringify(value)) > MAX_PARAMETERS_BYTES ? `more than ${MAX_PARAMETERS_BYTES} bytes as JSON` : undefined;
};

const connection: Check = (value) => {
  if (!isPlainObject(value)) return 'not a JSON object';
  for (const [key, item] of Object.entries(value)) {
    if (!CONNECTION_KEY.test(key)) return `a name that is not 1 to ${MAX_CONNECTION_KEY_LENGTH} printable characters`;
    if (typeof item !== 'string') return `${JSON.stringify(key.slice(0, 64))} is not a string`;
  }
  return byteLength(JSON.stringify(value)) > MAX_CONNECTION_BYTES ? `more than ${MAX_CONNECTION_BYTES} bytes as JSON` : undefined;
};

const requestFields = { reference, release, type, parameters, state };
const view = object({ ...requestFields, epoch: integer(0), status, connection }, { message: text(0) });
const ok = (wanted: boolean): Check => (value) => value === wanted ? undefined : `not ${wanted}`;

const REQUESTS: { [O in InstanceOp]: Check } = {
  reserve: object({ op: anything, ...requestFields }),
  confirm: object({ op: anything, reference, epoch }),
  update: object({ op: anything, ...requestFields, epoch }),
  status: object({ op: anything, reference }),
  renew: object({ op: anything, instances: arrayOf(object({ reference, epoch }), MAX_RENEW_INSTANCES) }),
  list: object({ op: anything }),
  report: object({ op: anything, reference, epoch, status, connection }, { message: text(0) }),
  check: object({ op: anything, reference, epoch }),
};

const RESULTS: { [O in InstanceOp]: Check } = {
  reserve: object({ ok: ok(true), lease: integer(1) }, { free: integer(0) }),
  confirm: object({ ok: ok(true) }),
  update: object({ ok: ok(true), instance: view }),
  status: object({ ok: ok(true), instance: view }),
  renew: object({ ok: ok(true), unknown: arrayOf(reference, MAX_RENEW_INSTANCES) }),
  list: object({ ok: ok(true), instances: arrayOf(view) }),
  report: object({ ok: ok(true) }),
  check: object({ ok: ok(true), current: (value) => typeof value === 'boolean' ? undefined : 'not a boolean' }),
};

const refusal = object({
  ok: ok(false),
  code: (value) => typeof value === 'string' && CODES.includes(value) ? undefined : `not one of ${CODES.join(', ')}`,
  reason: text(1),
});

function isOp(value: unknown): value is InstanceOp {
  return typeof value === 'string' && Object.hasOwn(REQUESTS, value);
}

/** Why an instance request (as the CLI or an instance asks for one) breaks the protocol's rules, or undefined. */
export function checkInstanceRequest(request: InstanceRequest): string | undefined {
  const { reference, release, type, parameters, state } = request;
  return object(requestFields)({ reference, release, type, parameters, state });
}

/** Why a request breaks the protocol's rules, or undefined. */
export function checkMessage(message: unknown): string | undefined {
  const op = isPlainObject(message) ? message['op'] : undefined;
  if (!isOp(op)) return typeof op === 'string' ? `unknown op ${JSON.stringify(op.slice(0, 64))}` : 'op is not a string';
  return REQUESTS[op](message);
}

/** Why an answer to `op` breaks the protocol's rules, or undefined. */
export function checkAnswer(op: InstanceOp, answer: unknown): string | undefined {
  if (!isPlainObject(answer)) return 'not a JSON object';
  if (answer['ok'] === false) return refusal(answer);
  if (answer['ok'] === true) return RESULTS[op](answer);
  return 'ok is not a boolean';
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function parseJson(bytes: Uint8Array): { value: unknown } | string {
  try {
    return { value: JSON.parse(decoder.decode(bytes)) as unknown };
  } catch {
    return 'not JSON text in UTF-8';
  }
}

/** The request a message holds, or why it is refused. */
export function parseMessage(bytes: Uint8Array): InstanceMessage | string {
  const parsed = parseJson(bytes);
  if (typeof parsed === 'string') return parsed;
  const problem = checkMessage(parsed.value);
  return problem ?? parsed.value as InstanceMessage;
}

/** The answer to `op` a message holds, or why it is refused. */
export function parseAnswer<O extends InstanceOp>(op: O, bytes: Uint8Array): AnswerOf<O> | string {
  const parsed = parseJson(bytes);
  if (typeof parsed === 'string') return parsed;
  const problem = checkAnswer(op, parsed.value);
  return problem ?? parsed.value as AnswerOf<O>;
}

/**
 * `text` made fit for a message or a reason: control characters (but tabs and newlines) and lone surrogates
 * replaced by U+FFFD, cut to MAX_MESSAGE_BYTES with an ellipsis. For a host's promise output, an error's message.
 */
export function toMessage(text: string): string {
  const clean = text.replace(NOT_TEXT_ALL, '\uFFFD');
  if (byteLength(clean) <= MAX_MESSAGE_BYTES) return clean;
  const room = MAX_MESSAGE_BYTES - byteLength('…');
  let bytes = 0;
  let end = 0;
  for (const character of clean) {
    bytes += byteLength(character);
    if (bytes > room) break;
    end += character.length;
  }
  return `${clean.slice(0, end)}…`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function viewOf(instance: unknown): unknown {
  if (!isRecord(instance)) return instance;
  const { reference, epoch, release, type, parameters, state, status, message, connection } = instance;
  return { reference, epoch, release, type, parameters, state, status, ...(message === undefined ? {} : { message }), connection };
}

/**
 * A service's answer to `op` as it goes on the wire: only the protocol's fields (a service may answer with
 * the rows it stores), free text made fit (toMessage). Still to be checked with checkAnswer.
 */
export function projectAnswer(op: InstanceOp, answer: unknown): unknown {
  if (!isRecord(answer)) return answer;
  if (answer['ok'] !== true) {
    const { ok, code, reason } = answer;
    return { ok, code, reason: typeof reason === 'string' ? toMessage(reason) : reason };
  }
  switch (op) {
    case 'reserve': return { ok: true, lease: answer['lease'], ...(answer['free'] === undefined ? {} : { free: answer['free'] }) };
    case 'update':
    case 'status': return { ok: true, instance: viewOf(answer['instance']) };
    case 'renew': return { ok: true, unknown: answer['unknown'] };
    case 'list': {
      const instances = answer['instances'];
      return { ok: true, instances: Array.isArray(instances) ? instances.map(viewOf) : instances };
    }
    case 'check': return { ok: true, current: answer['current'] };
    case 'confirm':
    case 'report': return { ok: true };
  }
}
