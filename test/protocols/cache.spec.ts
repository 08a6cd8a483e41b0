// The cache protocol, and fetching blobs over it, between real libp2p nodes on loopback TCP (noise, yamux)
// with real blob stores. "Malicious" peers are real nodes: one serves a blob whose file was tampered with,
// others register their own handlers for the protocol.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Libp2p, PeerId, Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import * as lengthPrefixed from 'it-length-prefixed';
import { BlobStore } from '../../node/cache/blob-store.js';
import { CHUNK_SIZE, cidOfBytes, hashFile } from '../../node/cache/cid.js';
import { fetchBlob, type FetchProgress } from '../../node/cache/fetch.js';
import {
  CACHE_PROTOCOL, MAX_ENTRY_BYTES, MAX_LOOKUP_ENTRIES, cacheProtocol, type CacheProtocol, type GetOptions,
} from '../../protocols/cache/index.js';
import { removeTree } from '../helpers/files.js';
import { createTestNode, recordingLogger } from '../helpers/nodes.js';

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const part of body) parts.push(part);
  return Buffer.concat(parts);
}

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

/** A peer that knows the protocol but misbehaves as `mode` says. */
type Rogue = 'short' | 'stall' | 'too-many-entries' | 'huge-header';

describe('protocols/cache', function () {
  this.timeout(20_000);
  const blob = randomBytes(10 * CHUNK_SIZE + 4321);
  const cid = cidOfBytes(blob);
  let chunks: string[];
  let root: string;
  let server: Libp2p;
  let client: Libp2p;
  let rogue: Libp2p;
  let serverCache: CacheProtocol;
  let clientCache: CacheProtocol;
  let mode: Rogue = 'short';
  const serverLog: string[] = [];
  const entries = new Map<string, Uint8Array[]>();

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'slapmesh-cache-'));
    const file = join(root, 'blob');
    writeFileSync(file, blob);
    chunks = (await hashFile(file)).chunks;
    const store = new BlobStore(join(root, 'server'));
    await store.init();
    await store.put(file);
    [server, client, rogue] = await Promise.all([createTestNode(), createTestNode(), createTestNode()]);
    // Two send buffers: every body of more than 2 MiB here fills them again as the client acknowledges.
    serverCache = cacheProtocol({ blobs: store, lookup: (key) => entries.get(key) ?? [], handlerTimeoutMs: 1_000, idleTimeoutMs: 1_000, sendBuffers: 2 })({ libp2p: server, logger: recordingLogger(serverLog) });
    clientCache = cacheProtocol({ blobs: new BlobStore(join(root, 'client')), getTimeoutMs: 2_000, lookupTimeoutMs: 2_000 })({ libp2p: client, logger: recordingLogger([]) });
    await serverCache.start();
    await clientCache.start();
    await rogue.handle(CACHE_PROTOCOL, async (stream: Stream) => {
      const lp = lpStream(stream);
      await lp.read();
      switch (mode) {
        case 'short': // announces the whole blob, sends half of it, and closes
          await lp.write(encode({ size: blob.byteLength }));
          lp.unwrap().send(blob.subarray(0, blob.byteLength / 2));
          break;
        case 'stall': // announces the whole blob, sends 1 MiB, and then nothing until the stream is closed
          await lp.write(encode({ size: blob.byteLength }));
          lp.unwrap().send(blob.subarray(0, CHUNK_SIZE));
          await new Promise((resolve) => stream.addEventListener('close', resolve, { once: true }));
          return;
        case 'too-many-entries':
          await lp.writeV([encode({ entries: MAX_LOOKUP_ENTRIES + 1 }), ...Array.from({ length: MAX_LOOKUP_ENTRIES + 1 }, () => new Uint8Array(1))]);
          break;
        case 'huge-header':
          await lp.write(new Uint8Array(100_000));
          break;
      }
      await stream.close();
    });
    await client.dial(server.getMultiaddrs()[0]!);
    await client.dial(rogue.getMultiaddrs()[0]!);
  });

  after(async () => {
    await serverCache.stop();
    await clientCache.stop();
    await Promise.all([server, client, rogue].map((node) => node.stop()));
    removeTree(root);
  });

  it('looks up the entries a peer holds for a key (none for an unknown key), dropping oversized ones', async () => {
    entries.set('release/linux-x64', [encode({ signed: 1 }), encode({ signed: 2 })]);
    entries.set('crowded', [new Uint8Array(MAX_ENTRY_BYTES + 1), ...Array.from({ length: 40 }, (_, i) => new Uint8Array(MAX_ENTRY_BYTES).fill(i))]);
    assert.deepEqual(await clientCache.lookup(server.peerId, 'release/linux-x64'), entries.get('release/linux-x64'));
    assert.deepEqual(await clientCache.lookup(server.peerId, 'unknown', { signal: AbortSignal.timeout(5_000) }), []);
    const crowded = await clientCache.lookup(server.peerId, 'crowded');
    assert.equal(crowded.length, MAX_LOOKUP_ENTRIES);
    assert.deepEqual(crowded[0], new Uint8Array(MAX_ENTRY_BYTES).fill(0));
    assert.ok(serverLog.some((line) => line.includes(`not sending an entry of ${MAX_ENTRY_BYTES + 1} bytes`)));
    await assert.rejects(clientCache.lookup(server.peerId, 'k'.repeat(257)), RangeError);
  });

  it('streams a 10 MiB blob whole, and from an offset in the middle of a chunk', async () => {
    const whole = await clientCache.get(server.peerId, cid);
    assert.equal(whole.size, blob.byteLength);
    assert.equal(sha(await collect(whole.body)), sha(blob));
    const offset = 3 * CHUNK_SIZE + 12345;
    const tail = await clientCache.get(server.peerId, cid, { offset, signal: AbortSignal.timeout(5_000) });
    assert.equal(tail.size, blob.byteLength);
    assert.deepEqual(await collect(tail.body), blob.subarray(offset));
    const none = await clientCache.get(server.peerId, cid, { offset: blob.byteLength });
    assert.equal((await collect(none.body)).byteLength, 0);
  });

  it('serves several gets at once, and a body abandoned half-way leaves the peer serving', async () => {
    const [a, b] = await Promise.all([clientCache.get(server.peerId, cid), clientCache.get(server.peerId, cid, { offset: CHUNK_SIZE })]);
    for await (const _ of a.body) break;
    assert.deepEqual(await collect(b.body), blob.subarray(CHUNK_SIZE));
    assert.equal(sha(await collect((await clientCache.get(server.peerId, cid)).body)), sha(blob));
  });

  it('sends from fresh buffers to a client that does not acknowledge; cuts off one that promised to and stays silent, or acknowledges more than was sent', async () => {
    /** Asks for the blob as `request` says, acknowledging with `ack` once the first bytes come; the bytes received, and how it ended. */
    const getRaw = async (request: object, ack?: object): Promise<{ received: Buffer; failed: boolean }> => {
      const stream = await client.dialProtocol(server.peerId, CACHE_PROTOCOL);
      const lp = lpStream(stream);
      await lp.write(encode(request));
      assert.deepEqual(JSON.parse(new TextDecoder().decode((await lp.read()).subarray())), { size: blob.byteLength });
      const raw = lp.unwrap();
      const parts: Uint8Array[] = [];
      try {
        for await (const part of raw) {
          if (ack && parts.length === 0) raw.send(lengthPrefixed.encode.single(encode(ack)));
          parts.push(part instanceof Uint8Array ? part : part.subarray());
        }
        return { received: Buffer.concat(parts), failed: false };
      } catch {
        return { received: Buffer.concat(parts), failed: true };
      }
    };
    const plain = await getRaw({ get: cid, offset: 0 });
    assert.equal(sha(plain.received), sha(blob));
    const silent = await getRaw({ get: cid, offset: 0, acks: true });
    assert.deepEqual({ bytes: silent.received.byteLength, failed: silent.failed }, { bytes: 2 * CHUNK_SIZE, failed: true }, 'what the two buffers held, then nothing');
    const liar = await getRaw({ get: cid, offset: 0, acks: true }, { received: blob.byteLength });
    assert.equal(liar.failed, true);
    assert.ok(liar.received.byteLength < blob.byteLength);
    assert.equal(sha(await collect((await clientCache.get(server.peerId, cid)).body)), sha(blob), 'and it goes on serving');
  });

  it('a blob the peer does not have: BlobNotFoundError', async () => {
    await assert.rejects(clientCache.get(server.peerId, cidOfBytes(Buffer.from('absent'))), { name: 'BlobNotFoundError' });
  });

  it('refuses invalid and oversized requests with a logged reason, resetting the stream, and keeps serving', async () => {
    const requests: Array<[Uint8Array, string]> = [
      [encode({ get: 'not-a-cid', offset: 0 }), 'invalid CID'],
      [encode({ get: cid, offset: -1 }), 'is not a byte offset'],
      [encode({ get: cid }), 'unknown request'],
      [encode({ get: cid, offset: 0, acks: 'yes' }), 'acks is not a boolean'],
      [encode({ get: cid, offset: blob.byteLength + 1 }), 'outside blob'],
      [encode({ lookup: '' }), 'lookup key'],
      [encode({ lookup: 'k', more: 1 }), 'unknown request'],
      [new TextEncoder().encode('not json'), 'not a JSON object'],
      [new Uint8Array(5 * 1024), 'unreadable request'],
    ];
    for (const [request, reason] of requests) {
      const logged = serverLog.length;
      const stream = await client.dialProtocol(server.peerId, CACHE_PROTOCOL);
      const lp = lpStream(stream);
      await lp.write(request);
      await assert.rejects(lp.read({ signal: AbortSignal.timeout(5_000) }));
      const refusal = serverLog.slice(logged).find((line) => line.startsWith('refused a cache request'));
      assert.ok(refusal?.includes(reason), `${reason}: ${refusal}`);
    }
    assert.deepEqual(await clientCache.lookup(server.peerId, 'release/linux-x64'), entries.get('release/linux-x64'));
  });

  it('refuses bad answers: too many entries, an oversized header, a body cut short, a stalled body', async () => {
    mode = 'too-many-entries';
    await assert.rejects(clientCache.lookup(rogue.peerId, 'key'), { name: 'InvalidCacheResponseError' });
    mode = 'huge-header';
    await assert.rejects(clientCache.lookup(rogue.peerId, 'key'), { name: 'InvalidCacheResponseError' });
    await assert.rejects(clientCache.get(rogue.peerId, cid), { name: 'InvalidCacheResponseError' });
    mode = 'short';
    await assert.rejects(collect((await clientCache.get(rogue.peerId, cid)).body), { name: 'InvalidCacheResponseError' });
    mode = 'stall';
    const stalled = await clientCache.get(rogue.peerId, cid, { idleTimeoutMs: 200 });
    let received = 0;
    await assert.rejects(async () => {
      for await (const bytes of stalled.body) received += bytes.byteLength;
    }, { name: 'CacheStallError' });
    assert.equal(received, CHUNK_SIZE);
  });

  it('the caller\'s signal aborts a body with its own error', async () => {
    const controller = new AbortController();
    const { body } = await clientCache.get(server.peerId, cid, { signal: controller.signal });
    await assert.rejects(async () => {
      for await (const _ of body) controller.abort();
    }, { name: 'AbortError' });
  });

  describe('fetchBlob', () => {
    let honest: Libp2p[];
    let bad: Libp2p;
    let stranger: Libp2p;
    let fetcher: BlobStore;
    let services: CacheProtocol[];
    /** Each get the fetch made: the peer and the offset asked for. */
    let gets: Array<{ peer: string; offset: number }>;
    let onBody: ((received: number) => void) | undefined;

    /** The client, watched: records each get and reports the bytes received to `onBody`. */
    const watched = {
      async get(peer: PeerId, wanted: string, options: GetOptions = {}) {
        gets.push({ peer: peer.toString(), offset: options.offset ?? 0 });
        const response = await clientCache.get(peer, wanted, options);
        return {
          size: response.size,
          body: (async function* () {
            let received = 0;
            for await (const bytes of response.body) {
              received += bytes.byteLength;
              yield bytes;
              onBody?.(received);
            }
          })(),
        };
      },
    };

    before(async () => {
      [bad, stranger, ...honest] = await Promise.all([createTestNode(), createTestNode(), createTestNode(), createTestNode()]);
      services = [];
      for (const [i, node] of [bad, stranger, ...honest].entries()) {
        const store = new BlobStore(join(root, `provider-${i}`));
        await store.init();
        if (node !== stranger) await store.putBytes(blob);
        services.push(cacheProtocol({ blobs: store })({ libp2p: node, logger: recordingLogger([]) }));
        await client.dial(node.getMultiaddrs()[0]!);
      }
      await Promise.all(services.map((service) => service.start()));
      // The bad provider's copy gets a flipped byte in chunk 3.
      const path = join(root, 'provider-0', 'blobs', cid);
      chmodSync(path, 0o644);
      const handle = await open(path, 'r+');
      await handle.write(Buffer.from([blob[3 * CHUNK_SIZE + 100]! ^ 0x80]), 0, 1, 3 * CHUNK_SIZE + 100);
      await handle.close();
    });

    beforeEach(async () => {
      fetcher = new BlobStore(mkdtempSync(join(root, 'fetcher-')));
      await fetcher.init();
      gets = [];
      onBody = undefined;
    });

    after(async () => {
      await Promise.all(services.map((service) => service.stop()));
      await Promise.all([bad, stranger, ...honest].map((node) => node.stop()));
    });

    it('drops a provider at its first bad chunk, reports it, and goes on from that chunk with the next', async () => {
      const reported: Array<[string, string]> = [];
      const path = await fetchBlob({
        store: fetcher, client: watched, cid, size: blob.byteLength, chunks, providers: [bad.peerId, honest[0]!.peerId, honest[1]!.peerId],
        onBadProvider: (peer, reason) => reported.push([peer.toString(), reason]),
      });
      assert.equal(path, await fetcher.path(cid));
      assert.equal((await hashFile(path)).cid, cid);
      assert.deepEqual(reported, [[bad.peerId.toString(), 'chunk 3 does not match its hash']]);
      assert.deepEqual(gets, [{ peer: bad.peerId.toString(), offset: 0 }, { peer: honest[0]!.peerId.toString(), offset: 3 * CHUNK_SIZE }]);
    });

    it('tells where the download stands: as each provider starts, then after each chunk written, never past a bad one', async () => {
      const progress: FetchProgress[] = [];
      await fetchBlob({ store: fetcher, client: watched, cid, size: blob.byteLength, chunks, providers: [bad.peerId, honest[0]!.peerId], onProgress: (p) => progress.push(p) });
      const from = (peer: Libp2p) => progress.filter((p) => p.peer === peer.peerId.toString()).map((p) => p.bytes);
      const chunkEnds = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, i) => Math.min((first + i) * CHUNK_SIZE, blob.byteLength));
      assert.deepEqual(from(bad), chunkEnds(0, 3), 'the bad provider: its start, then its three good chunks');
      assert.deepEqual(from(honest[0]!), chunkEnds(3, Math.ceil(blob.byteLength / CHUNK_SIZE)), 'the next one: from chunk 3 to the end');
      assert.equal(progress.length, from(bad).length + from(honest[0]!).length);
      assert.ok(progress.every((p) => p.size === blob.byteLength));
    });

    it('without chunk hashes, a blob that does not match its CID is refused and fetched again from the next provider', async () => {
      const reported: string[] = [];
      const path = await fetchBlob({ store: fetcher, client: watched, cid, providers: [bad.peerId, honest[0]!.peerId], onBadProvider: (peer) => reported.push(peer.toString()) });
      assert.deepEqual(readFileSync(path), blob);
      assert.deepEqual(reported, [bad.peerId.toString()]);
      assert.deepEqual(gets.map((get) => get.offset), [0, 0]);
    });

    it('leaves a provider that stalls for the next, keeping the chunks it sent', async () => {
      mode = 'stall';
      const reported: string[] = [];
      const path = await fetchBlob({
        store: fetcher, client: watched, cid, chunks, providers: [rogue.peerId, honest[1]!.peerId], stallTimeoutMs: 500,
        onBadProvider: (peer) => reported.push(peer.toString()),
      });
      assert.deepEqual(readFileSync(path), blob);
      assert.deepEqual(reported, []);
      assert.deepEqual(gets, [{ peer: rogue.peerId.toString(), offset: 0 }, { peer: honest[1]!.peerId.toString(), offset: CHUNK_SIZE }]);
    });

    it('an aborted fetch keeps its verified chunks and no blob; the next one resumes from there', async () => {
      const controller = new AbortController();
      let visibleMidway: Promise<boolean> | undefined;
      onBody = (received) => {
        if (received < 4 * CHUNK_SIZE || controller.signal.aborted) return;
        controller.abort();
        visibleMidway = fetcher.has(cid);
      };
      await assert.rejects(fetchBlob({ store: fetcher, client: watched, cid, chunks, providers: [honest[0]!.peerId], signal: controller.signal }), { name: 'AbortError' });
      assert.equal(await visibleMidway, false);
      assert.equal(await fetcher.has(cid), false);
      const kept = (await fetcher.stats()).partialBytes;
      assert.ok(kept >= 3 * CHUNK_SIZE && kept % CHUNK_SIZE === 0, `${kept} bytes kept`);
      onBody = undefined;
      const path = await fetchBlob({ store: fetcher, client: watched, cid, chunks, providers: [honest[0]!.peerId] });
      assert.deepEqual(readFileSync(path), blob);
      assert.equal(gets.length, 2);
      assert.equal(gets[1]!.offset, kept);
      assert.deepEqual(await fetcher.stats(), { blobs: 1, bytes: blob.byteLength, partials: 0, partialBytes: 0 });
    });

    it('when every provider fails: BlobFetchError listing each failure', async () => {
      mode = 'short';
      const error = await fetchBlob({ store: fetcher, client: watched, cid, chunks, providers: [stranger.peerId, rogue.peerId] }).then(
        () => assert.fail('fetched'), (error: unknown) => error as Error & { failures: Array<{ peer: PeerId; error: Error }> });
      assert.equal(error.name, 'BlobFetchError');
      assert.deepEqual(error.failures.map(({ peer, error }) => [peer.toString(), error.name]), [
        [stranger.peerId.toString(), 'BlobNotFoundError'],
        [rogue.peerId.toString(), 'InvalidCacheResponseError'],
      ]);
      assert.equal(await fetcher.has(cid), false);
    });

    it('returns a blob already in the store without asking anyone', async () => {
      await fetcher.putBytes(blob);
      assert.equal(await fetchBlob({ store: fetcher, client: watched, cid, providers: [] }), await fetcher.path(cid));
      assert.deepEqual(gets, []);
    });
  });
});
