import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { callSlap, SlapCallError } from '../../engine/recipes/slap-client.js';
import {
  MAX_REQUEST_LINE, PartitionSocket, SocketPathTooLongError, type ChildRequest, type PartitionBackend, type PartitionParameters,
} from '../../node/partition-socket.js';
import { removeTree, writeTree } from '../helpers/files.js';
import { recordingLogger } from '../helpers/nodes.js';

const PARAMETERS: PartitionParameters = {
  parameters: { name: 'World' }, softwareType: 'default', partitionId: 'slappart3', computerId: 'peer-1',
  instanceTitle: 'hello', rootInstanceTitle: 'hello', ipv4: ['127.0.0.3'], ipv6: [], ports: [30001, 30002],
};

/** Sends raw bytes on one connection; resolves with the answer lines once `count` came, or the connection closed. */
function exchange(path: string, data: string | Buffer, count: number): Promise<{ answers: unknown[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const answers: unknown[] = [];
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(data));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        answers.push(JSON.parse(buffer.slice(0, nl)));
        buffer = buffer.slice(nl + 1);
      }
      if (answers.length >= count) {
        socket.destroy();
        resolve({ answers, closed: false });
      }
    });
    socket.on('end', () => resolve({ answers, closed: true }));
    socket.on('error', reject);
  });
}

describe('node/partition-socket', () => {
  let dir: string;
  let path: string;
  let socket: PartitionSocket;
  let published: Record<string, string>[];
  let requested: ChildRequest[];
  let backend: PartitionBackend;
  const lines: string[] = [];

  beforeEach(async () => {
    dir = writeTree({});
    path = join(dir, 'instances', '3', '.slapmesh', 'slap.sock');
    published = [];
    requested = [];
    backend = {
      parameters: () => PARAMETERS,
      publish: async (connection) => void published.push(connection),
      request: async (child) => {
        requested.push(child);
        return { ready: true, connection: { url: 'http://child/' }, status: 'ready' };
      },
    };
    // The backend can be swapped per test: the socket calls through this object.
    socket = new PartitionSocket({
      path, token: 'secret', log: recordingLogger(lines),
      backend: { parameters: () => backend.parameters(), publish: (c) => backend.publish(c), request: (c) => backend.request(c) },
    });
    await socket.start();
  });
  afterEach(async () => {
    await socket.stop();
    removeTree(dir);
  });
  const endpoint = () => ({ socket: path, token: 'secret' });

  it('answers parameters, publish and request for its partition', async () => {
    assert.deepEqual(await callSlap(endpoint(), 'parameters', {}), PARAMETERS);
    assert.deepEqual(await callSlap(endpoint(), 'publish', { connection: { url: 'http://x/' } }), {});
    assert.deepEqual(published, [{ url: 'http://x/' }]);
    const child = { name: 'db', release: 'bafy', type: 'mariadb', parameters: { size: '3' }, state: 'started', shared: false };
    assert.deepEqual(await callSlap(endpoint(), 'request', child), { ready: true, connection: { url: 'http://child/' }, status: 'ready' });
    assert.deepEqual(requested, [child]);
  });

  it('is a 0600 socket inside the partition; stop removes it, start replaces a stale one', async () => {
    assert.ok(lstatSync(path).isSocket());
    assert.equal(lstatSync(path).mode & 0o777, 0o600);
    await socket.stop();
    assert.ok(!existsSync(path));
    // A node killed with SIGKILL leaves its socket file behind.
    spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    assert.ok(lstatSync(path).isSocket());
    await socket.start();
    assert.deepEqual(await callSlap(endpoint(), 'parameters', {}), PARAMETERS);
  });

  it('refuses a wrong or missing token, and keeps serving', async () => {
    await assert.rejects(callSlap({ socket: path, token: 'guess' }, 'parameters', {}), (error: unknown) =>
      error instanceof SlapCallError && error.remoteName === 'UnauthorizedError');
    const { answers } = await exchange(path, `${JSON.stringify({ id: 7, method: 'publish', params: { connection: { a: 'b' } } })}\n`, 1);
    assert.deepEqual(answers, [{ id: 7, error: { name: 'UnauthorizedError', message: 'wrong or missing partition token' } }]);
    assert.deepEqual(published, []);
    assert.deepEqual(await callSlap(endpoint(), 'parameters', {}), PARAMETERS);
  });

  it('answers malformed and invalid lines with a typed error, on the same connection', async () => {
    const request = (fields: object) => JSON.stringify({ token: 'secret', ...fields });
    const { answers } = await exchange(path, [
      'not json',
      '[1, 2]',
      request({ id: 1, method: 42 }),
      request({ id: { no: 1 }, method: 'parameters' }),
      request({ id: 2, method: 'destroy' }),
      request({ id: 3, method: 'publish', params: { connection: { port: 8080 } } }),
      request({ id: 4, method: 'request', params: { name: 'x', release: 'r', state: 'paused' } }),
      request({ id: 5, method: 'parameters' }),
      '',
    ].join('\n'), 8);
    // Answers come as each request is done: compare them in any order.
    const sorted = (list: unknown[]) => list.map((item) => JSON.stringify(item)).sort();
    const names = answers.map((a) => [(a as { id: unknown }).id, (a as { error?: { name: string } }).error?.name ?? 'ok']);
    assert.deepEqual(sorted(names), sorted([
      [null, 'MalformedRequestError'], [null, 'MalformedRequestError'], [1, 'MalformedRequestError'], [null, 'MalformedRequestError'],
      [2, 'UnknownMethodError'], [3, 'MalformedRequestError'], [4, 'MalformedRequestError'], [5, 'ok'],
    ]));
    assert.deepEqual(published, []);
    assert.deepEqual(requested, []);
  });

  it('refuses a line longer than 64 KiB, closes that connection, and serves the next ones', async () => {
    const { answers, closed } = await exchange(path, Buffer.alloc(MAX_REQUEST_LINE + 10, 'a'), 2);
    assert.ok(closed);
    assert.deepEqual(answers, [{ id: null, error: { name: 'RequestTooLargeError', message: `a request line is limited to ${MAX_REQUEST_LINE} bytes` } }]);
    const long = JSON.stringify({ id: 1, method: 'publish', token: 'secret', params: { connection: { big: 'x'.repeat(MAX_REQUEST_LINE) } } });
    assert.equal((await exchange(path, `${long}\n`, 2)).answers.length, 1);
    assert.deepEqual(published, []);
    assert.deepEqual(await callSlap(endpoint(), 'parameters', {}), PARAMETERS);
  });

  it('passes on the backend\'s errors by name, and bounds each request with a timeout', async () => {
    backend = {
      ...backend,
      publish: async () => {
        throw Object.assign(new Error('the instance is being destroyed'), { name: 'GoneError' });
      },
      request: () => new Promise(() => undefined),
    };
    await assert.rejects(callSlap(endpoint(), 'publish', { connection: {} }), (error: unknown) =>
      error instanceof SlapCallError && error.remoteName === 'GoneError' && error.message === 'the instance is being destroyed');

    const quick = new PartitionSocket({ path: join(dir, 'quick.sock'), token: 't', log: recordingLogger([]), backend, requestTimeoutMs: 50 });
    await quick.start();
    try {
      await assert.rejects(callSlap({ socket: quick.path, token: 't' }, 'request', { name: 'x', release: 'r' }), (error: unknown) =>
        error instanceof SlapCallError && error.remoteName === 'TimeoutError');
      assert.deepEqual(await callSlap({ socket: quick.path, token: 't' }, 'parameters', {}), PARAMETERS);
    } finally {
      await quick.stop();
    }
  });

  it('fails with SocketPathTooLongError for a path a unix socket cannot have, and leaves other files alone', async () => {
    const deep = join(dir, 'x'.repeat(120), 'slap.sock');
    const tooLong = new PartitionSocket({ path: deep, token: 't', log: recordingLogger([]), backend });
    await assert.rejects(tooLong.start(), (error: unknown) => error instanceof SocketPathTooLongError && error.message.includes(deep));

    const file = join(dir, 'plain', 'slap.sock');
    mkdirSync(join(dir, 'plain'));
    writeFileSync(file, 'not a socket');
    const blocked = new PartitionSocket({ path: file, token: 't', log: recordingLogger([]), backend });
    await assert.rejects(blocked.start(), /EADDRINUSE/);
    assert.ok(lstatSync(file).isFile());
  });
});
