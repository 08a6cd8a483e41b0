// The libp2p host of a node: TCP, Noise, Yamux, identify, ping, kad-dht and gossipsub, set up for
// a private mesh (research/p2p.md: kad-dht's defaults drop private addresses and stay client-only,
// 5 inbound dials/s per host resets busy meshes, discovered peers are not dialled).
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { bootstrap } from '@libp2p/bootstrap';
import { gossipsub, type GossipSub } from '@libp2p/gossipsub';
import { identify, type Identify } from '@libp2p/identify';
import type { Libp2p, PeerId, PrivateKey } from '@libp2p/interface';
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht';
import { ping, type Ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { noiseCrypto } from './noise-crypto.js';

export const DHT_PROTOCOL = '/slapmesh/kad/1.0.0';
const SELF_QUERY_INTERVAL_MS = 5 * 60_000;

export type HostServices = { identify: Identify; ping: Ping; dht: KadDHT; pubsub: GossipSub };
export type Host = Libp2p<HostServices>;

export interface HostInit {
  readonly privateKey: PrivateKey;
  readonly listen: readonly string[];
  readonly bootstrap: readonly string[];
  /** With `privateMesh`, only peers for which this is true may connect (checked once Noise authenticated them). */
  readonly isTrusted: (peer: PeerId) => boolean;
  readonly privateMesh: boolean;
}

export class InvalidMultiaddrError extends Error {
  override name = 'InvalidMultiaddrError';
}

/** Parses a multiaddr given by a person, with an error that says which one and why. */
export function parseMultiaddr(text: string, what: string, needsPeer = false): Multiaddr {
  let ma: Multiaddr;
  try {
    ma = multiaddr(text);
  } catch (error) {
    throw new InvalidMultiaddrError(`invalid ${what} multiaddr ${JSON.stringify(text)}: ${(error as Error).message}`);
  }
  if (needsPeer && !ma.getComponents().some((c) => c.name === 'p2p')) {
    throw new InvalidMultiaddrError(`${what} multiaddr ${text} must end with /p2p/<PeerId> (as printed by slapmesh node start)`);
  }
  return ma;
}

const toHex = (bytes: Uint8Array | undefined) => (bytes ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex') : '');

export async function createHost(init: HostInit): Promise<Host> {
  const listen = init.listen.map((a) => parseMultiaddr(a, '--listen').toString());
  const peers = init.bootstrap.map((a) => parseMultiaddr(a, '--bootstrap', true).toString());
  const deny = (peer: PeerId) => init.privateMesh && !init.isTrusted(peer);
  return createLibp2p({
    privateKey: init.privateKey,
    addresses: { listen },
    transports: [tcp()],
    // Node's cipher with each session key imported once (node/noise-crypto.ts).
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux()],
    peerDiscovery: peers.length ? [bootstrap({ list: peers, timeout: 10 })] : [],
    connectionManager: {
      // Many nodes on one host dial each other at once; the default (5/s per host) resets them.
      inboundConnectionThreshold: 10_000,
      maxIncomingPendingConnections: 256,
      maxConnections: 500,
      // A mesh on one busy host (simulations, a burst of joins) completes handshakes slowly: aborting them
      // at the default 10 s wastes the work done and starts it all again.
      dialTimeout: 30_000,
      addressDialTimeout: 30_000,
      inboundUpgradeTimeout: 30_000,
    },
    // Pings that wait on a busy event loop are not a dead peer: closing their connections made a loaded
    // mesh churn (every close and redial costs both sides a handshake). TCP still reports dead sockets,
    // and adverts tell live peers from dead ones: a ping (a new stream) every 10 s per connection was
    // a good part of an idle mesh's work.
    connectionMonitor: { pingInterval: 60_000, pingTimeout: { minTimeout: 10_000 } },
    connectionGater: {
      denyInboundEncryptedConnection: deny,
      denyOutboundEncryptedConnection: deny,
    },
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: DHT_PROTOCOL, clientMode: false, peerInfoMapper: passthroughMapper,
        // A node's first self-query (a lookup of its own id, which connects it to the K closest peers
        // it finds) ran 1 s after start, and other queries waited for it: in a mesh of tens of nodes on
        // one host every join became a burst of ~20 handshakes and most nodes ended up connected to most
        // others. Connections fill the routing table anyway; the self-query keeps it fresh every 5 min
        // (the default), and queries do not wait for it.
        initialQuerySelfInterval: SELF_QUERY_INTERVAL_MS,
        querySelfInterval: SELF_QUERY_INTERVAL_MS,
        allowQueryWithZeroPeers: true,
      }),
      pubsub: gossipsub({
        // adverts.ts relies on StrictSign: a message's signature is its `from` peer's, verified here.
        globalSignaturePolicy: 'StrictSign',
        allowPublishToZeroTopicPeers: true, heartbeatInterval: 1000, D: 4, Dlo: 3, Dhi: 6, Dlazy: 3, gossipFactor: 0.1,
        // Publish to the mesh only: flooding every topic peer multiplies copies (each verified) by the connection count.
        floodPublish: false,
        // IDONTWANT saves bandwidth on large messages; adverts are ~1 KiB, where it only multiplies the
        // RPCs (one to every mesh peer for every message received).
        idontwantMinDataSize: 16 * 1024,
        // Without it gossipsub verifies the signature of every copy before noticing it is a duplicate;
        // from + seqno is the StrictSign message id, and enters the cache only once a copy verified.
        fastMsgIdFn: (msg) => `${toHex(msg.from)}/${toHex(msg.seqno)}`,
        // The default penalty for more than 10 peers on one IP graylists every peer of a mesh that
        // shares a host (simulations, one machine, one NAT): adverts then stop flowing past ~10 nodes.
        scoreParams: { IPColocationFactorWeight: 0 },
      }),
    },
  });
}
