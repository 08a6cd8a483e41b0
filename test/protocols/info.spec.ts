// The info protocol between real libp2p nodes on loopback TCP (noise, yamux, identify).
import { strict as assert } from 'node:assert';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Libp2p, PrivateKey, Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { signAdvert, type Advert } from '../../node/advert.js';
import { INFO_PROTOCOL, MAX_OTHER_ADVERTS, infoProtocol, type InfoProtocol } from '../../protocols/info/index.js';
import { createTestNode, recordingLogger } from '../helpers/nodes.js';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';

function advertOf(node: Libp2p): Advert {
  const peerId = node.peerId.toString();
  return {
    peerId, seq: 1, time: Date.now(),
    addresses: node.getMultiaddrs().map((ma) => ma.toString()),
    hardware: { cpus: 2, cpuModel: 'test', memory: 1024, freeMemory: 512, disk: 4096, arch: 'x64', os: 'linux-x64-glibc', libc: 'glibc', load: [0, 0, 0], partitions: { total: 2, free: 2 } },
    releases: [],
  };
}

type RogueMode = 'silent' | 'garbage' | 'not-an-advert' | 'oversized' | 'another-peer' | 'hang-up' | 'too-many-others';

describe('protocols/info', function () {
  this.timeout(10_000);
  let server: Libp2p;
  let client: Libp2p;
  let rogue: Libp2p;
  let rogueKey: PrivateKey;
  let bare: Libp2p;
  let serverInfo: InfoProtocol;
  let clientInfo: InfoProtocol;
  let serverWire: Uint8Array;
  let othersWire: Uint8Array[] = [];
  let mode: RogueMode = 'silent';
  const serverLog: string[] = [];
  let slowAdvert: Promise<Uint8Array> | undefined;

  before(async () => {
    const serverKey = await generateKeyPair('Ed25519');
    rogueKey = await generateKeyPair('Ed25519');
    [server, client, rogue, bare] = await Promise.all([createTestNode(serverKey), createTestNode(), createTestNode(rogueKey), createTestNode()]);
    serverWire = await signAdvert(advertOf(server), serverKey);
    othersWire = await Promise.all([1, 2, 3].map(async () => {
      const key = await generateKeyPair('Ed25519');
      const peerId = peerIdFromPrivateKey(key).toString();
      return signAdvert({ ...advertOf(server), peerId, addresses: [] }, key);
    }));
    serverInfo = infoProtocol({ getAdvert: () => slowAdvert ?? serverWire, getOthers: (max) => othersWire.slice(0, max), handlerTimeoutMs: 200 })({ libp2p: server, logger: recordingLogger(serverLog) });
    await serverInfo.start();
    clientInfo = infoProtocol({ getAdvert: () => new Uint8Array(), timeoutMs: 500 })({ libp2p: client, logger: recordingLogger([]) });
    await rogue.handle(INFO_PROTOCOL, async (stream: Stream) => {
      switch (mode) {
        case 'too-many-others': { // announces more adverts of others than were asked for
          const lp = lpStream(stream);
          await lp.read();
          await lp.writeV([await signAdvert(advertOf(rogue), rogueKey), new TextEncoder().encode('5')]);
          break;
        }
        case 'silent': // keeps the stream open and never answers
          await new Promise((resolve) => stream.addEventListener('close', resolve, { once: true }));
          return;
        case 'garbage':
          stream.send(new Uint8Array(32).fill(0xff));
          break;
        case 'not-an-advert':
          await lpStream(stream).write(new TextEncoder().encode('{"hello": "world"}'));
          break;
        case 'oversized': // announces a 1 MiB message
          await lpStream(stream).write(new Uint8Array(1024 * 1024));
          break;
        case 'another-peer': // a valid advert, but of someone else
          await lpStream(stream).write(serverWire);
          break;
        case 'hang-up':
          break;
      }
      await stream.close();
    });
  });

  after(async () => {
    await serverInfo.stop();
    await Promise.all([server, client, rogue, bare].map((node) => node.stop()));
  });

  it('fetches and verifies a peer\'s advert, by address and by PeerId', async () => {
    const byAddress = await clientInfo.fetch(server.getMultiaddrs()[0]!);
    assert.deepEqual(byAddress, JSON.parse((JSON.parse(new TextDecoder().decode(serverWire)) as { payload: string }).payload));
    const { advert, wire } = await clientInfo.fetchSigned(server.peerId, { signal: AbortSignal.timeout(2_000) });
    assert.equal(advert.peerId, server.peerId.toString());
    assert.deepEqual(wire, serverWire);
  });

  it('sends the adverts of others it holds, as many as asked for, and none unless asked', async () => {
    assert.deepEqual((await clientInfo.fetchSigned(server.peerId)).others, []);
    assert.deepEqual((await clientInfo.fetchSigned(server.peerId, { others: 2 })).others, othersWire.slice(0, 2));
    assert.deepEqual((await clientInfo.fetchSigned(server.peerId, { others: MAX_OTHER_ADVERTS })).others, othersWire);
    await assert.rejects(clientInfo.fetchSigned(server.peerId, { others: MAX_OTHER_ADVERTS + 1 }), RangeError);
  });

  it('answers nothing to a malformed request, and keeps serving', async () => {
    for (const request of ['{"others": -1}', '{"others": 1, "more": true}', 'not json', '{"others": 99999999}']) {
      const stream = await client.dialProtocol(server.peerId, INFO_PROTOCOL);
      const lp = lpStream(stream);
      await lp.write(new TextEncoder().encode(request));
      await assert.rejects(lp.read({ signal: AbortSignal.timeout(2_000) }), request);
    }
    assert.equal((await clientInfo.fetch(server.peerId)).peerId, server.peerId.toString());
  });

  it('answers several fetches in parallel', async () => {
    const adverts = await Promise.all([1, 2, 3].map(() => clientInfo.fetch(server.peerId)));
    assert.deepEqual(new Set(adverts.map((a) => a.peerId)), new Set([server.peerId.toString()]));
  });

  it('gives up on a peer that does not answer: InfoTimeoutError', async () => {
    mode = 'silent';
    await assert.rejects(clientInfo.fetch(rogue.getMultiaddrs()[0]!), { name: 'InfoTimeoutError' });
  });

  it('the caller\'s signal aborts a fetch with its own error', async () => {
    mode = 'silent';
    const controller = new AbortController();
    const fetching = clientInfo.fetch(rogue.getMultiaddrs()[0]!, { signal: controller.signal });
    setImmediate(() => controller.abort());
    await assert.rejects(fetching, { name: 'AbortError' });
  });

  for (const [what, rogueMode, reason] of [
    ['bytes that are not a length-prefixed message', 'garbage', /length|EOF/i],
    ['a message that is not an advert', 'not-an-advert', /invalid advert/],
    ['a message longer than the limit', 'oversized', /too long|overflow/],
    ['the advert of another peer', 'another-peer', /came from/],
    ['no message at all', 'hang-up', /EOF/],
    ['more adverts of others than asked for', 'too-many-others', /announced 5 other adverts for 0 asked/],
  ] as const) {
    it(`refuses an answer of ${what}: InvalidInfoResponseError`, async () => {
      mode = rogueMode;
      await assert.rejects(clientInfo.fetch(rogue.getMultiaddrs()[0]!), (error: Error) => {
        assert.equal(error.name, 'InvalidInfoResponseError', error.message);
        assert.match(error.message, reason);
        return true;
      });
    });
  }

  it('the handler gives up after its own timeout', async () => {
    slowAdvert = new Promise(() => undefined);
    try {
      // the server resets the stream long before the client's own timeout (500 ms)
      await assert.rejects(clientInfo.fetch(server.peerId), { name: 'StreamResetError' });
      assert.ok(serverLog.some((line) => /^debug: info answer .* failed/.test(line)), serverLog.join('\n'));
    } finally {
      slowAdvert = undefined;
    }
  });

  it('a peer without the protocol, or once it stopped: UnsupportedProtocolError', async () => {
    await assert.rejects(clientInfo.fetch(bare.getMultiaddrs()[0]!), { name: 'UnsupportedProtocolError' });
    await serverInfo.stop();
    try {
      await assert.rejects(clientInfo.fetch(server.peerId), { name: 'UnsupportedProtocolError' });
    } finally {
      await serverInfo.start();
    }
    assert.equal((await clientInfo.fetch(server.peerId)).peerId, server.peerId.toString());
  });
});
