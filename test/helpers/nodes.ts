// A plain libp2p node on loopback (tcp, noise, yamux, identify) for protocol tests, and a logger that
// keeps its lines for assertions.
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import type { Libp2p, PrivateKey } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { createLibp2p } from 'libp2p';
import type { Logger } from '../../node/log.js';

export async function createTestNode(privateKey?: PrivateKey): Promise<Libp2p> {
  return createLibp2p({
    ...(privateKey ? { privateKey } : {}),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
    connectionManager: { inboundConnectionThreshold: 10_000 },
  });
}

/** Every line into `lines`, errors prefixed `error: ` and debug lines `debug: `. */
export function recordingLogger(lines: string[]): Logger {
  const log = ((message: string) => void lines.push(message)) as Logger;
  log.error = (message) => lines.push(`error: ${message}`);
  log.debug = (message) => lines.push(`debug: ${message}`);
  return log;
}
