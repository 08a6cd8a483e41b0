// npm run bench:calls — what one instance-protocol call costs (issue 6): two nodes' libp2p hosts in this
// process (TCP on 127.0.0.1, Noise, Yamux, as node/host.ts sets them up), --calls `status` calls (2000),
// --concurrency at once (10), through the protocol's client, which keeps one session stream per connection
// (protocols/instance/session.ts); against the baseline measured in the same run: the same request and
// answer, each on a stream of its own (what version 1.0.0 of the protocol did). Prints the CPU of both nodes
// per call and the ratio. The CPU is the cost that matters: a burst of placements queues behind it.
import './as-a-node.js'; // first: V8's flags as a node's
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createHost, type Host } from '../node/host.js';
import { instanceProtocol, type InstanceService } from '../protocols/instance/index.js';

const BASELINE_PROTOCOL = '/slapmesh/bench/stream-per-call/1.0.0';

const quiet = Object.assign(() => undefined, { error: () => undefined, debug: () => undefined });

/** Answers every `status` with one instance, as a host would. */
const service: Pick<InstanceService, 'status'> = {
  status: (_from, reference) => ({
    ok: true,
    instance: { reference, release: 'bagaaieraay5uw4scuwfx47xgl3xg3cqobsytitngsvplbhexbrjdm5aytryq', type: 'default', parameters: { name: 'World' }, state: 'started', epoch: 1, status: 'ready', connection: { url: 'http://127.1.2.3:8080/' } },
  }),
};

async function host(): Promise<Host> {
  return createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], isTrusted: () => true, privateMesh: false });
}

/** Runs `call` `calls` times, `concurrency` at once; the CPU of this process (both nodes) per call, in ms. */
async function measure(calls: number, concurrency: number, call: () => Promise<void>): Promise<{ cpuMs: number; wallMs: number }> {
  for (let i = 0; i < 100; i++) await call(); // warm-up: compiled code, open connection
  const cpu = process.cpuUsage();
  const start = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < calls) await call();
  }));
  const used = process.cpuUsage(cpu);
  return { cpuMs: (used.user + used.system) / 1000 / calls, wallMs: (performance.now() - start) / calls };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { calls: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '10' } } });
  const calls = Number(values.calls);
  const concurrency = Number(values.concurrency);
  if (!(calls > 0) || !(concurrency > 0)) throw new Error('--calls and --concurrency must be positive numbers');
  const [owner, hosting] = [await host(), await host()];
  const hostSide = instanceProtocol({ service: service as InstanceService })({ libp2p: hosting, logger: quiet });
  const ownerSide = instanceProtocol({})({ libp2p: owner, logger: quiet });
  await hostSide.start();
  // The baseline: one request and one answer per stream, then both sides close.
  await hosting.handle(BASELINE_PROTOCOL, async (stream: Stream) => {
    const lp = lpStream(stream);
    const request = JSON.parse(new TextDecoder().decode((await lp.read()).subarray())) as { reference: string };
    await lp.write(new TextEncoder().encode(JSON.stringify(await service.status('', request.reference, AbortSignal.timeout(5_000)))));
    await stream.close();
  }, { maxInboundStreams: 1_000 });
  try {
    const connection = await owner.dial(hosting.getMultiaddrs()[0]!);
    const request = new TextEncoder().encode(JSON.stringify({ op: 'status', reference: 'web' }));
    const baseline = await measure(calls, concurrency, async () => {
      const stream = await connection.newStream(BASELINE_PROTOCOL, { maxOutboundStreams: 1_000 });
      const lp = lpStream(stream);
      await lp.write(request);
      JSON.parse(new TextDecoder().decode((await lp.read()).subarray()));
      await stream.close();
    });
    const session = await measure(calls, concurrency, async () => {
      const answer = await ownerSide.status(hosting.peerId, 'web');
      if (!answer.ok) throw new Error(`status refused: ${answer.reason}`);
    });
    console.log(`bench:calls: ${calls} status calls, ${concurrency} at once, between two nodes in this process (CPU of both)`);
    console.log(`  a stream per call (baseline): ${baseline.cpuMs.toFixed(3)} ms of CPU per call, ${baseline.wallMs.toFixed(3)} ms of wall time`);
    console.log(`  the protocol's session:       ${session.cpuMs.toFixed(3)} ms of CPU per call, ${session.wallMs.toFixed(3)} ms of wall time`);
    console.log(`  session / baseline: ${(session.cpuMs / baseline.cpuMs).toFixed(2)}× the CPU`);
  } finally {
    await hostSide.stop();
    await Promise.all([owner.stop(), hosting.stop()]);
  }
}

await main();
