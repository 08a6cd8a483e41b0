// The instance protocol between real libp2p nodes on loopback TCP (noise, yamux, identify): a host, an
// owner and a third peer with a small in-memory service keyed by (connection's PeerId, reference); a rogue
// peer that answers badly or not at all; a bare peer without the protocol.
import { strict as assert } from 'node:assert';
import type { Libp2p, Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { CID } from 'multiformats/cid';
import { base58btc } from 'multiformats/bases/base58';
import { cidOfBytes } from '../../node/cache/cid.js';
import {
  INSTANCE_PROTOCOL, MAX_INSTANCE_ANSWER_BYTES, MAX_INSTANCE_REQUEST_BYTES, MAX_MESSAGE_BYTES, MAX_PARAMETERS_DEPTH, MAX_RENEW_INSTANCES,
  instanceProtocol, type Answer, type InstancePlacement, type InstanceProtocol, type InstanceReport, type InstanceRequest,
  type InstanceService, type InstanceUpdate, type InstanceView,
} from '../../protocols/instance/index.js';
import { frame, ID_BYTES, unframe } from '../../protocols/instance/session.js';
import { createTestNode, recordingLogger } from '../helpers/nodes.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const encode = (value: unknown) => encoder.encode(JSON.stringify(value));
const release = cidOfBytes(encoder.encode('the hello release'));
const HANDLER_TIMEOUT_MS = 1_000;

/** What a host stores: more than the protocol shows (the handler sends the protocol's fields only). */
type HostedRow = InstanceView & { owner: string; partition: number };

/**
 * A small real service: hosted instances keyed by (from, reference), owned instances by reference with the
 * host they were placed on. A few references misbehave on purpose: `boom` throws, `bad-lease` answers
 * against the protocol, `slow` never answers, `rude` refuses with an unprintable reason.
 */
class MemoryService implements InstanceService {
  readonly hosted = new Map<string, HostedRow>();
  readonly owned = new Map<string, { host: string; epoch: number; report?: InstanceReport }>();
  readonly calls: Array<{ op: string; from: string }> = [];
  slowSignal: AbortSignal | undefined;

  reserve(from: string, request: InstanceRequest, signal: AbortSignal): Promise<Answer<{ lease: number; free?: number }>> | Answer<{ lease: number; free?: number }> {
    this.calls.push({ op: 'reserve', from });
    switch (request.reference) {
      case 'boom': throw new Error('the database is on fire');
      case 'bad-lease': return { ok: true, lease: -1 };
      case 'bad-free': return { ok: true, lease: 10_000, free: 1.5 };
      case 'rude': return { ok: false, code: 'refused', reason: `\u001b[31mno\n${'x'.repeat(2 * MAX_MESSAGE_BYTES)}` };
      case 'slow':
        this.slowSignal = signal;
        return new Promise(() => undefined);
    }
    const key = keyOf(from, request.reference);
    if (this.hosted.has(key)) return { ok: false, code: 'refused', reason: 'already reserved here: update it' };
    this.hosted.set(key, { ...request, owner: from, partition: this.hosted.size, epoch: 0, status: 'reserved', connection: {} });
    return { ok: true, lease: 10_000, free: 7 };
  }

  confirm(from: string, reference: string, epoch: number): Answer {
    this.calls.push({ op: 'confirm', from });
    const row = this.hosted.get(keyOf(from, reference));
    if (row === undefined) return { ok: false, code: 'not-found', reason: `no ${reference} of yours here` };
    if (epoch < row.epoch) return { ok: false, code: 'stale', reason: `placed here at epoch ${row.epoch}` };
    Object.assign(row, { epoch, status: 'deploying' });
    return { ok: true };
  }

  update(from: string, update: InstanceUpdate): Answer<{ instance: InstanceView }> {
    this.calls.push({ op: 'update', from });
    const row = this.hosted.get(keyOf(from, update.reference));
    if (row === undefined) return { ok: false, code: 'not-found', reason: `no ${update.reference} of yours here` };
    if (update.epoch < row.epoch) return { ok: false, code: 'stale', reason: `placed here at epoch ${row.epoch}` };
    Object.assign(row, update);
    return { ok: true, instance: row };
  }

  status(from: string, reference: string): Answer<{ instance: InstanceView }> {
    this.calls.push({ op: 'status', from });
    const row = this.hosted.get(keyOf(from, reference));
    return row === undefined ? { ok: false, code: 'not-found', reason: `no ${reference} of yours here` } : { ok: true, instance: row };
  }

  renew(from: string, instances: InstancePlacement[]): Answer<{ unknown: string[] }> {
    this.calls.push({ op: 'renew', from });
    const unknown = instances.filter(({ reference, epoch }) => this.hosted.get(keyOf(from, reference))?.epoch !== epoch);
    return { ok: true, unknown: unknown.map(({ reference }) => reference) };
  }

  list(from: string): Answer<{ instances: InstanceView[] }> {
    this.calls.push({ op: 'list', from });
    return { ok: true, instances: [...this.hosted.values()].filter((row) => row.owner === from) };
  }

  report(from: string, report: InstanceReport): Answer {
    this.calls.push({ op: 'report', from });
    const owned = this.owned.get(report.reference);
    if (owned?.host !== from || owned.epoch !== report.epoch) return { ok: false, code: 'stale', reason: 'not placed on you at that epoch' };
    owned.report = report;
    return { ok: true };
  }

  check(from: string, reference: string, epoch: number): Answer<{ current: boolean }> {
    this.calls.push({ op: 'check', from });
    const owned = this.owned.get(reference);
    return { ok: true, current: owned?.host === from && owned.epoch === epoch };
  }
}

function keyOf(from: string, reference: string): string {
  return JSON.stringify([from, reference]);
}

function request(reference: string, overrides: Partial<InstanceRequest> = {}): InstanceRequest {
  return { reference, release, type: 'default', parameters: { name: 'World' }, state: 'started', ...overrides };
}

/** Raw frames on a fresh stream, each with its id: the answers as parsed JSON, by id. */
async function rawCalls(from: Libp2p, to: Libp2p, frames: Array<[number, Uint8Array]>): Promise<Map<number, unknown>> {
  const stream = await from.dialProtocol(to.peerId, INSTANCE_PROTOCOL);
  const lp = lpStream(stream, { maxDataLength: ID_BYTES + MAX_INSTANCE_ANSWER_BYTES });
  for (const [id, bytes] of frames) await lp.write(frame(id, bytes));
  const answers = new Map<number, unknown>();
  while (answers.size < frames.length) {
    const answer = unframe((await lp.read({ signal: AbortSignal.timeout(5_000) })).subarray())!;
    answers.set(answer.id, JSON.parse(decoder.decode(answer.message)) as unknown);
  }
  await stream.close();
  return answers;
}

/** One request as raw bytes on a fresh stream; the answer as parsed JSON. */
async function rawCall(from: Libp2p, to: Libp2p, bytes: Uint8Array): Promise<unknown> {
  return (await rawCalls(from, to, [[7, bytes]])).get(7);
}

/**
 * How the rogue peer answers each request: these bytes as the answer's message, raw bytes, nothing (the
 * session kept open), a hang-up, or a frame with an id nobody asked.
 */
type Reply = Uint8Array | { raw: Uint8Array } | 'silent' | 'hang-up' | 'wrong-id';

describe('protocols/instance', function () {
  this.timeout(20_000);
  let host: Libp2p;
  let owner: Libp2p;
  let third: Libp2p;
  let rogue: Libp2p;
  let bare: Libp2p;
  let hostProtocol: InstanceProtocol;
  let ownerProtocol: InstanceProtocol;
  let thirdProtocol: InstanceProtocol;
  /** A client on the owner's node with a short timeout (not started: a client needs no handler). */
  let impatient: InstanceProtocol;
  let hostService: MemoryService;
  let ownerService: MemoryService;
  const hostLog: string[] = [];
  let reply: Reply = 'silent';
  let onRogueRequest: (() => void) | undefined;

  before(async () => {
    [host, owner, third, rogue, bare] = await Promise.all([createTestNode(), createTestNode(), createTestNode(), createTestNode(), createTestNode()]);
    hostService = new MemoryService();
    ownerService = new MemoryService();
    hostProtocol = instanceProtocol({ service: hostService, handlerTimeoutMs: HANDLER_TIMEOUT_MS })({ libp2p: host, logger: recordingLogger(hostLog) });
    ownerProtocol = instanceProtocol({ service: ownerService, timeoutMs: 5_000 })({ libp2p: owner, logger: recordingLogger([]) });
    thirdProtocol = instanceProtocol({ timeoutMs: 5_000 })({ libp2p: third, logger: recordingLogger([]) });
    impatient = instanceProtocol({ timeoutMs: 300 })({ libp2p: owner, logger: recordingLogger([]) });
    await Promise.all([hostProtocol.start(), ownerProtocol.start(), thirdProtocol.start()]);
    await rogue.handle(INSTANCE_PROTOCOL, async (stream: Stream) => {
      const lp = lpStream(stream);
      try {
        for (;;) {
          const { id } = unframe((await lp.read()).subarray())!;
          onRogueRequest?.();
          if (reply === 'silent') continue;
          if (reply === 'wrong-id') await lp.write(frame(id + 1, encode({ ok: true, instances: [] })));
          else if (reply instanceof Uint8Array) await lp.write(frame(id, reply));
          else {
            if (reply !== 'hang-up') stream.send(reply.raw);
            await stream.close();
            return;
          }
        }
      } catch {
        // the client hung up on a bad answer: what these tests want
      }
    });
    for (const node of [host, third, rogue, bare]) await owner.dial(node.getMultiaddrs()[0]!);
    await third.dial(host.getMultiaddrs()[0]!);
  });

  after(async () => {
    await Promise.all([hostProtocol.stop(), ownerProtocol.stop(), thirdProtocol.stop()]);
    await Promise.all([host, owner, third, rogue, bare].map((node) => node.stop()));
  });

  it('every op round-trips: owner → host and host → owner, by PeerId and by addresses', async () => {
    assert.deepEqual(await ownerProtocol.reserve(host.peerId, request('web')), { ok: true, lease: 10_000, free: 7 });
    assert.deepEqual(await ownerProtocol.reserve(host.peerId, request('web')), { ok: false, code: 'refused', reason: 'already reserved here: update it' });
    assert.deepEqual(await ownerProtocol.confirm(host.peerId, 'web', 1), { ok: true });
    const view = { ...request('web'), epoch: 1, status: 'deploying', connection: {} };
    // Only the protocol's fields: not the host's `owner` and `partition`.
    assert.deepEqual(await ownerProtocol.status(host.peerId, 'web', { signal: AbortSignal.timeout(5_000) }), { ok: true, instance: view });
    assert.deepEqual(await ownerProtocol.status(host.getMultiaddrs(), 'web'), { ok: true, instance: view });

    const parameters = { name: 'Mesh', nested: { list: [1, 2.5, true, null, 'x'], deeper: {} } };
    const updated = await ownerProtocol.update(host.peerId, { ...request('web', { parameters, state: 'stopped', type: 'frontend.v2' }), epoch: 2 });
    assert.deepEqual(updated, { ok: true, instance: { ...request('web', { parameters, state: 'stopped', type: 'frontend.v2' }), epoch: 2, status: 'deploying', connection: {} } });
    assert.deepEqual(await ownerProtocol.update(host.peerId, { ...request('web'), epoch: 1 }), { ok: false, code: 'stale', reason: 'placed here at epoch 2' });
    assert.deepEqual(await ownerProtocol.confirm(host.peerId, 'ghost', 1), { ok: false, code: 'not-found', reason: 'no ghost of yours here' });

    assert.deepEqual(await ownerProtocol.renew(host.peerId, [{ reference: 'web', epoch: 2 }, { reference: 'ghost', epoch: 1 }, { reference: 'web2', epoch: 1 }]), { ok: true, unknown: ['ghost', 'web2'] });
    const listed = await ownerProtocol.list(host.peerId);
    assert.ok(listed.ok);
    assert.deepEqual(listed.instances.map((instance) => [instance.reference, instance.epoch, instance.state]), [['web', 2, 'stopped']]);

    // The owner records the placement; the host reports to it and checks with it.
    ownerService.owned.set('web', { host: host.peerId.toString(), epoch: 2 });
    const report = { reference: 'web', epoch: 2, status: 'ready', message: 'all promises pass\n\tfine', connection: { url: 'http://127.1.0.1:8080/', 'secret-key': '' } };
    assert.deepEqual(await hostProtocol.report(owner.peerId, report), { ok: true });
    assert.deepEqual(ownerService.owned.get('web')?.report, report);
    assert.deepEqual(await hostProtocol.report(owner.peerId, { ...report, epoch: 1 }), { ok: false, code: 'stale', reason: 'not placed on you at that epoch' });
    assert.deepEqual(await hostProtocol.check(owner.peerId, 'web', 2), { ok: true, current: true });
    assert.deepEqual(await hostProtocol.check(owner.peerId, 'web', 1), { ok: true, current: false });
    assert.deepEqual(ownerService.calls.slice(-4).map((call) => call.from), Array(4).fill(host.peerId.toString()));
  });

  it('a peer only ever addresses its own instances: the service is given the connection\'s PeerId', async () => {
    await ownerProtocol.reserve(host.peerId, request('shop'));
    await ownerProtocol.confirm(host.peerId, 'shop', 1);
    const before = await ownerProtocol.status(host.peerId, 'shop');
    const callsBefore = hostService.calls.length;

    const notFound = { ok: false, code: 'not-found', reason: 'no shop of yours here' };
    assert.deepEqual(await thirdProtocol.status(host.peerId, 'shop'), notFound);
    assert.deepEqual(await thirdProtocol.update(host.peerId, { ...request('shop', { state: 'destroyed' }), epoch: 99 }), notFound);
    assert.deepEqual(await thirdProtocol.confirm(host.peerId, 'shop', 99), notFound);
    assert.deepEqual(await thirdProtocol.renew(host.peerId, [{ reference: 'shop', epoch: 1 }]), { ok: true, unknown: ['shop'] });
    // Its own `shop` is another instance.
    assert.deepEqual(await thirdProtocol.reserve(host.peerId, request('shop')), { ok: true, lease: 10_000, free: 7 });
    const theirs = await thirdProtocol.list(host.peerId);
    assert.ok(theirs.ok);
    assert.deepEqual(theirs.instances.map((instance) => [instance.reference, instance.epoch]), [['shop', 0]]);

    // A message naming an owner is not a message of the protocol.
    const claimed = await rawCall(third, host, encode({ op: 'status', reference: 'shop', owner: owner.peerId.toString() }));
    assert.deepEqual(claimed, { ok: false, code: 'invalid', reason: 'unknown field "owner"' });

    assert.deepEqual(new Set(hostService.calls.slice(callsBefore).map((call) => call.from)), new Set([third.peerId.toString()]));
    assert.deepEqual(await ownerProtocol.status(host.peerId, 'shop'), before);
    // A host that is not the instance's host cannot report on it.
    ownerService.owned.set('shop', { host: host.peerId.toString(), epoch: 1 });
    const report = { reference: 'shop', epoch: 1, status: 'ready', connection: {} };
    assert.equal((await thirdProtocol.report(owner.peerId, report)).ok, false);
    assert.deepEqual(await thirdProtocol.check(owner.peerId, 'shop', 1), { ok: true, current: false });
  });

  it('a caller\'s stored row is sent as the request\'s fields alone', async () => {
    const row = { ...request('row'), owner: 'someone', host: 'elsewhere', status: 'placing', connection: {}, updatedAt: 1 };
    assert.deepEqual(await ownerProtocol.reserve(host.peerId, row), { ok: true, lease: 10_000, free: 7 });
  });

  const deep = (depth: number): unknown => depth === 0 ? 'leaf' : { down: deep(depth - 1) };
  const reserve = (fields: Record<string, unknown>) => ({ op: 'reserve', ...request('web'), ...fields });
  const report = (fields: Record<string, unknown>) => ({ op: 'report', reference: 'web', epoch: 1, status: 'ready', connection: {}, ...fields });
  const invalid: Array<[string, unknown, RegExp]> = [
    ['not JSON', 'not json', /^not JSON text/],
    ['not UTF-8', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), /^not JSON text/],
    ['an array', [], /^op is not a string$/],
    ['an unknown op', { op: 'destroy' }, /^unknown op "destroy"$/],
    ['an op inherited by objects', { op: 'toString' }, /^unknown op "toString"$/],
    ['an unknown field', reserve({ extra: 1 }), /^unknown field "extra"$/],
    ['an unknown field with a control character in its name', reserve({ 'a\u007f': 1 }), /^unknown field "a\uFFFD"$/],
    ['a missing field', { op: 'reserve', reference: 'web', type: 'default', parameters: {}, state: 'started' }, /^release missing$/],
    ['a long reference', reserve({ reference: 'r'.repeat(257) }), /^reference: not a string of 1 to 256 printable characters$/],
    ['an empty reference', reserve({ reference: '' }), /^reference: /],
    ['a reference with a control character', reserve({ reference: 'a\u0000b' }), /^reference: /],
    ['a reference with a bidi override', reserve({ reference: 'a\u202eb' }), /^reference: /],
    ['a reference that is a number', { op: 'status', reference: 5 }, /^reference: /],
    ['a release that is not a CID', reserve({ release: 'not-a-cid' }), /^release: not a release CID/],
    ['a release in another base', reserve({ release: CID.parse(release).toString(base58btc) }), /^release: not a CID in its canonical form$/],
    ['a long release', reserve({ release: `b${'a'.repeat(200)}` }), /^release: not a string of at most 128 characters$/],
    ['a type with a space', reserve({ type: 'a b' }), /^type: not 1 to 64 of/],
    ['a long type', reserve({ type: 't'.repeat(65) }), /^type: /],
    ['parameters that are an array', reserve({ parameters: [] }), /^parameters: not a JSON object$/],
    ['parameters that are null', reserve({ parameters: null }), /^parameters: not a JSON object$/],
    ['parameters nested too deep', reserve({ parameters: deep(MAX_PARAMETERS_DEPTH + 1) }), /^parameters: nested more than 32 deep$/],
    ['parameters over 64 KiB', reserve({ parameters: { blob: 'x'.repeat(64 * 1024) } }), /^parameters: more than 65536 bytes as JSON$/],
    ['an unknown state', reserve({ state: 'running' }), /^state: not one of started, stopped, destroyed$/],
    ['epoch 0', { op: 'confirm', reference: 'web', epoch: 0 }, /^epoch: not an integer from 1 up$/],
    ['a fractional epoch', { op: 'confirm', reference: 'web', epoch: 1.5 }, /^epoch: /],
    ['a negative epoch', { op: 'check', reference: 'web', epoch: -1 }, /^epoch: /],
    ['an unsafe epoch', { op: 'check', reference: 'web', epoch: 2 ** 53 }, /^epoch: /],
    ['an epoch in a string', { op: 'confirm', reference: 'web', epoch: '1' }, /^epoch: /],
    ['an update without epoch', { op: 'update', ...request('web') }, /^epoch missing$/],
    ['a renew of too many', { op: 'renew', instances: Array.from({ length: MAX_RENEW_INSTANCES + 1 }, (_, i) => ({ reference: `r${i}`, epoch: 1 })) }, /^instances: more than 1000 items$/],
    ['a renew of epoch 0', { op: 'renew', instances: [{ reference: 'web', epoch: 0 }] }, /^instances: \[0\]: epoch: /],
    ['a list with a field', { op: 'list', owner: 'me' }, /^unknown field "owner"$/],
    ['a long status', report({ status: 's'.repeat(33) }), /^status: not 1 to 32 of/],
    ['a status with a space', report({ status: 'not ok' }), /^status: /],
    ['a message over 4 KiB', report({ message: 'm'.repeat(MAX_MESSAGE_BYTES + 1) }), /^message: not a string of 0 to 4096 bytes$/],
    ['a message with escape sequences', report({ message: '\u001b[31mred' }), /^message: holds control characters$/],
    ['a connection of numbers', report({ connection: { url: 5 } }), /^connection: "url" is not a string$/],
    ['a connection that is an array', report({ connection: [] }), /^connection: not a JSON object$/],
    ['a connection with an empty name', report({ connection: { '': 'x' } }), /^connection: a name that is not/],
  ];

  it('refuses invalid requests with `invalid` and a reason, logs them, never calls the service, and keeps serving', async () => {
    const calls = hostService.calls.length;
    for (const [what, message, reason] of invalid) {
      const logged = hostLog.length;
      const bytes = message instanceof Uint8Array ? message : typeof message === 'string' ? encoder.encode(message) : encode(message);
      const answer = await rawCall(owner, host, bytes) as { ok: boolean; code: string; reason: string };
      assert.deepEqual([answer.ok, answer.code], [false, 'invalid'], what);
      assert.match(answer.reason, reason, what);
      assert.ok(hostLog.slice(logged).includes(`refused an instance request from ${owner.peerId.toString()}: ${answer.reason}`), `${what}: ${hostLog.slice(logged).join('\n')}`);
    }
    assert.equal(hostService.calls.length, calls);
    assert.equal((await ownerProtocol.status(host.peerId, 'web')).ok, true);
  });

  it('refuses an oversized request with `invalid` (or resets the stream, far over the limit), and keeps serving', async () => {
    const refused = { ok: false, code: 'invalid', reason: `a request of more than ${MAX_INSTANCE_REQUEST_BYTES} bytes` };
    assert.deepEqual(await rawCall(owner, host, new Uint8Array(MAX_INSTANCE_REQUEST_BYTES + 1).fill(0x20)), refused);
    // Far over, the frame's length alone ends the session: the reset reaches the reader as a reset or an end.
    const far = await rawCall(owner, host, new Uint8Array(4 * MAX_INSTANCE_REQUEST_BYTES)).catch((error: Error) => error.name);
    assert.ok(far === 'StreamResetError' || far === 'UnexpectedEOFError', JSON.stringify(far));
    assert.equal((await ownerProtocol.status(host.peerId, 'web')).ok, true);
  });

  it('answers the requests of a session as each is ready, by id: a slow one holds back none of the others', async () => {
    const slow = (id: number) => [id, encode({ op: 'reserve', ...request('slow') })] as [number, Uint8Array];
    const quick = (id: number) => [id, encode({ op: 'status', reference: 'web' })] as [number, Uint8Array];
    const order: number[] = [];
    const stream = await owner.dialProtocol(host.peerId, INSTANCE_PROTOCOL);
    const lp = lpStream(stream, { maxDataLength: ID_BYTES + MAX_INSTANCE_ANSWER_BYTES });
    for (const [id, bytes] of [slow(1), quick(2), quick(0xffff_ffff)]) await lp.write(frame(id, bytes));
    for (let i = 0; i < 3; i++) order.push(unframe((await lp.read({ signal: AbortSignal.timeout(5_000) })).subarray())!.id);
    assert.deepEqual(order, [2, 0xffff_ffff, 1]);
    await stream.close();
  });

  it('a frame too short to hold an id ends the session: the stream is reset, the node keeps serving', async () => {
    const stream = await owner.dialProtocol(host.peerId, INSTANCE_PROTOCOL);
    const lp = lpStream(stream);
    await lp.write(new Uint8Array([1, 2]));
    await assert.rejects(lp.read({ signal: AbortSignal.timeout(5_000) }), { name: 'StreamResetError' });
    assert.equal((await ownerProtocol.status(host.peerId, 'web')).ok, true);
  });

  it('calls to a peer share one stream, which the caller closes once idle', async () => {
    const quickToIdle = instanceProtocol({ sessionIdleMs: 200 })({ libp2p: third, logger: recordingLogger([]) });
    const instanceStreams = () => third.getConnections(host.peerId).flatMap((connection) => connection.streams)
      .filter((stream) => stream.protocol === INSTANCE_PROTOCOL);
    const before = instanceStreams().length;
    const answers = await Promise.all(Array.from({ length: 10 }, () => quickToIdle.list(host.peerId)));
    assert.ok(answers.every((answer) => answer.ok));
    assert.equal(instanceStreams().length, before + 1);
    const closed = new Promise((resolve) => instanceStreams().at(-1)!.addEventListener('close', resolve, { once: true }));
    await closed;
    assert.equal(instanceStreams().length, before);
    // The next call opens another.
    assert.equal((await quickToIdle.list(host.peerId)).ok, true);
    await quickToIdle.stop();
  });

  it('the client refuses to send an invalid or oversized request: InvalidInstanceRequestError, nothing sent', async () => {
    const calls = hostService.calls.length;
    const refused = { name: 'InvalidInstanceRequestError' };
    await assert.rejects(ownerProtocol.reserve(host.peerId, request('r'.repeat(257))), refused);
    await assert.rejects(ownerProtocol.reserve(host.peerId, request('web', { parameters: { f: () => 1 } })), refused);
    await assert.rejects(ownerProtocol.confirm(host.peerId, 'web', 0), (error: Error) => error instanceof RangeError && /^confirm: epoch: /.test(error.message));
    await assert.rejects(ownerProtocol.report(host.peerId, { reference: 'web', epoch: 1, status: 'ready', message: '\u0007', connection: {} }), refused);
    // A renew of 1000 placements of long references is more than a request may hold: the caller sends batches.
    const long = Array.from({ length: MAX_RENEW_INSTANCES }, (_, i) => ({ reference: `${i}`.padEnd(256, 'r'), epoch: 1 }));
    await assert.rejects(ownerProtocol.renew(host.peerId, long), { name: 'InvalidInstanceRequestError', message: /more than 262144$/ });
    assert.equal(hostService.calls.length, calls);
  });

  it('a service that throws, or answers against the protocol, gives `busy`; the error is logged and the node keeps serving', async () => {
    let logged = hostLog.length;
    assert.deepEqual(await ownerProtocol.reserve(host.peerId, request('boom')), { ok: false, code: 'busy', reason: 'reserve failed on this node' });
    assert.ok(hostLog.slice(logged).some((line) => line.startsWith('error: the instance service failed on reserve') && line.includes('the database is on fire')), hostLog.join('\n'));
    logged = hostLog.length;
    assert.deepEqual(await ownerProtocol.reserve(host.peerId, request('bad-lease')), { ok: false, code: 'busy', reason: 'reserve failed on this node' });
    assert.ok(hostLog.slice(logged).some((line) => line === 'error: the instance service answered reserve from ' +
      `${owner.peerId.toString()} against the protocol: lease: not an integer from 1 up`), hostLog.join('\n'));
    assert.deepEqual(await ownerProtocol.reserve(host.peerId, request('bad-free')), { ok: false, code: 'busy', reason: 'reserve failed on this node' });
    assert.equal((await ownerProtocol.status(host.peerId, 'web')).ok, true);
  });

  it('a refusal\'s reason goes out printable and at most 4 KiB', async () => {
    const answer = await ownerProtocol.reserve(host.peerId, request('rude'));
    assert.ok(!answer.ok);
    assert.equal(answer.code, 'refused');
    assert.ok(answer.reason.startsWith('\uFFFD[31mno\nxxx') && answer.reason.endsWith('…'), answer.reason.slice(0, 20));
    assert.ok(Buffer.byteLength(answer.reason) <= MAX_MESSAGE_BYTES);
  });

  it('a service slower than the handler\'s timeout: `busy`, and the service\'s signal is aborted', async () => {
    const logged = hostLog.length;
    assert.deepEqual(await ownerProtocol.reserve(host.peerId, request('slow')), { ok: false, code: 'busy', reason: `no answer within ${HANDLER_TIMEOUT_MS} ms` });
    assert.equal(hostService.slowSignal?.aborted, true);
    assert.ok(hostLog.slice(logged).includes(`the instance service did not answer reserve from ${owner.peerId.toString()} within ${HANDLER_TIMEOUT_MS} ms`));
    assert.equal((await ownerProtocol.status(host.peerId, 'web')).ok, true);
  });

  it('a node without a service answers `busy` until one is set', async () => {
    assert.deepEqual(await ownerProtocol.list(third.peerId), { ok: false, code: 'busy', reason: 'this node does not serve instances yet' });
    thirdProtocol.setService(new MemoryService());
    try {
      assert.deepEqual(await ownerProtocol.list(third.peerId), { ok: true, instances: [] });
    } finally {
      thirdProtocol.setService(undefined);
    }
  });

  it('answers many calls at once', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, () => ownerProtocol.status(host.peerId, 'web')));
    assert.ok(answers.every((answer) => answer.ok && answer.instance.reference === 'web'));
  });

  const refusedAnswers: Array<[string, Reply, (client: InstanceProtocol) => Promise<unknown>, RegExp]> = [
    ['bytes that are not a length-prefixed message', { raw: new Uint8Array(32).fill(0xff) }, (c) => c.reserve(rogue.peerId, request('web')), /length|EOF/i],
    ['no message at all', 'hang-up', (c) => c.reserve(rogue.peerId, request('web')), /EOF/],
    ['a message over 1 MiB', new Uint8Array(MAX_INSTANCE_ANSWER_BYTES + 1), (c) => c.list(rogue.peerId), /too long/],
    ['text that is not JSON', encoder.encode('hello'), (c) => c.reserve(rogue.peerId, request('web')), /not JSON text/],
    ['JSON that is not an object', encode([1]), (c) => c.reserve(rogue.peerId, request('web')), /not a JSON object/],
    ['no ok', encode({ lease: 1 }), (c) => c.reserve(rogue.peerId, request('web')), /ok is not a boolean/],
    ['a reserve answer without lease', encode({ ok: true }), (c) => c.reserve(rogue.peerId, request('web')), /lease missing/],
    ['a lease of 0', encode({ ok: true, lease: 0 }), (c) => c.reserve(rogue.peerId, request('web')), /lease: not an integer from 1 up/],
    ['an unknown field', encode({ ok: true, lease: 1, owner: 'x' }), (c) => c.reserve(rogue.peerId, request('web')), /unknown field "owner"/],
    ['an unknown refusal code', encode({ ok: false, code: 'nope', reason: 'x' }), (c) => c.confirm(rogue.peerId, 'web', 1), /code: not one of/],
    ['an empty reason', encode({ ok: false, code: 'refused', reason: '' }), (c) => c.confirm(rogue.peerId, 'web', 1), /reason: not a string of 1/],
    ['a reason with escape sequences', encode({ ok: false, code: 'refused', reason: '\u001b]0;pwned\u0007' }), (c) => c.confirm(rogue.peerId, 'web', 1), /reason: holds control characters/],
    ['an instance of another reference', encode({ ok: true, instance: { ...request('other'), epoch: 1, status: 'ready', connection: {} } }), (c) => c.status(rogue.peerId, 'web'), /another reference, "other"/],
    ['an instance with a negative epoch', encode({ ok: true, instance: { ...request('web'), epoch: -1, status: 'ready', connection: {} } }), (c) => c.status(rogue.peerId, 'web'), /instance: epoch: /],
    ['unknown references not asked about', encode({ ok: true, unknown: ['other'] }), (c) => c.renew(rogue.peerId, [{ reference: 'web', epoch: 1 }]), /"other", which was not asked about/],
    ['a check without current', encode({ ok: true }), (c) => c.check(rogue.peerId, 'web', 1), /current missing/],
    ['a list of bad instances', encode({ ok: true, instances: [{ reference: 'web' }] }), (c) => c.list(rogue.peerId), /instances: \[0\]: release missing/],
  ];

  for (const [what, rogueReply, call, reason] of refusedAnswers) {
    it(`refuses an answer of ${what}: InvalidInstanceAnswerError`, async () => {
      reply = rogueReply;
      await assert.rejects(call(ownerProtocol), (error: Error) => {
        assert.equal(error.name, 'InvalidInstanceAnswerError', error.message);
        assert.match(error.message, reason);
        return true;
      });
    });
  }

  it('drops an answer that matches no request of the session: the call is still unanswered', async () => {
    reply = 'wrong-id';
    await assert.rejects(impatient.list(rogue.peerId), { name: 'InstanceTimeoutError' });
  });

  it('gives up on a peer that does not answer: InstanceTimeoutError', async () => {
    reply = 'silent';
    await assert.rejects(impatient.status(rogue.peerId, 'web'), { name: 'InstanceTimeoutError', message: /within 300 ms/ });
  });

  it('the caller\'s signal aborts a call with its own error', async () => {
    reply = 'silent';
    const controller = new AbortController();
    const requested = new Promise<void>((resolve) => {
      onRogueRequest = resolve;
    });
    const calling = ownerProtocol.status(rogue.peerId, 'web', { signal: controller.signal });
    await requested;
    onRogueRequest = undefined;
    controller.abort();
    await assert.rejects(calling, { name: 'AbortError' });
  });

  it('a peer without the protocol, or once it stopped: UnsupportedProtocolError', async () => {
    await assert.rejects(ownerProtocol.list(bare.peerId), { name: 'UnsupportedProtocolError' });
    await hostProtocol.stop();
    try {
      await assert.rejects(ownerProtocol.list(host.peerId), { name: 'UnsupportedProtocolError' });
    } finally {
      await hostProtocol.start();
    }
    assert.equal((await ownerProtocol.list(host.peerId)).ok, true);
  });
});
