// Instances over a real mesh (issue 6's acceptance): nodes on 127.0.0.1 in this process, each with its own
// data directory; the hello release built for real once on A; instances requested through the control
// socket as the CLI does, placed, deployed into partitions, served, stopped, started and destroyed.
import { strict as assert } from 'node:assert';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { multiaddr } from '@multiformats/multiaddr';
import { callControl, ControlError } from '../../node/control.js';
import type { InstanceJson } from '../../node/instances.js';
import { SlapmeshNode, type NodeOptions } from '../../node/node.js';
import type { StoredOwned } from '../../node/store.js';
import { createTestNode, recordingLogger } from '../helpers/nodes.js';
import { instanceProtocol } from '../../protocols/instance/index.js';
import { removeTree, writeTree } from '../helpers/files.js';

const HELLO = fileURLToPath(new URL('../../../examples/hello', import.meta.url));
const FAST = { advertIntervalMs: 200, peerTtlMs: 5000 };
const WAIT_MS = 60_000;

type RequestAnswer = { instance: InstanceJson; reached: boolean };

/** A profile of type `tree`: it requests a child instance of the same release and publishes the child's url. */
const TREE_PROFILE = `[buildout]
parts = child publish

[child]
recipe = slapos.cookbook:request
name = child
software-url = $\${slap-connection:software-release-url}
software-type = default
config-name = Child
return = url

[publish]
recipe = slapos.cookbook:publish
child-url = $\${child:connection-url}
`;

/** A profile whose one part runs a shell command, given the instance's parameters in [slap-configuration]. */
const commandProfile = (command: string) => `[buildout]
parts = run

[slap-configuration]
recipe = slapos.cookbook:slapconfiguration

[run]
recipe = plone.recipe.command
stop-on-error = true
command = ${command}
`;

/** Type `slow`: its buildout waits until the file its `flag` parameter names exists. */
const SLOW_PROFILE = commandProfile('while [ ! -e $${slap-configuration:configuration.flag} ]; do sleep 0.05; done');

/** Type `flaky`: it fails until the file its `flag` parameter names exists. */
const FLAKY_PROFILE = commandProfile('test -e $${slap-configuration:configuration.flag}');

async function get(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return (await response.text()).trim();
}

async function refused(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(5000) });
    return false;
  } catch {
    return true;
  }
}

describe('node: instances over a mesh', function () {
  this.timeout(180_000);
  const dirs: string[] = [];
  const nodes: SlapmeshNode[] = [];
  let a: SlapmeshNode;
  let b: SlapmeshNode;
  let c: SlapmeshNode;
  let release: string;

  function options(extra: Partial<NodeOptions> = {}): NodeOptions {
    const dataDir = writeTree({});
    dirs.push(dataDir);
    return {
      dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: a ? [a.addresses()[0]!] : [], trust: [], open: false, private: false,
      trustAnyBuilder: false, partitions: 3, verbose: true, stderr: () => undefined, ...FAST, ...extra,
    };
  }

  async function start(extra: Partial<NodeOptions> = {}): Promise<SlapmeshNode> {
    const node = new SlapmeshNode(options(extra));
    await node.start();
    nodes.push(node);
    return node;
  }

  const request = (node: SlapmeshNode, params: Record<string, unknown>) =>
    callControl(node.options.dataDir, 'request', { release, type: 'default', state: 'started', ...params }, { idleTimeoutMs: WAIT_MS + 10_000 }) as Promise<RequestAnswer>;

  /** Resolves once `node` holds an advert of `peer` listing `cid`. */
  async function seesRelease(node: SlapmeshNode, peer: string, cid: string): Promise<void> {
    while (!node.table.get(peer)?.advert.releases.some((r) => r.cid === cid)) await once(node.table, 'peer:updated');
  }

  /** Resolves with the owned instance once `test` holds for it. */
  async function ownedUntil(node: SlapmeshNode, reference: string, test: (owned: StoredOwned) => boolean): Promise<StoredOwned> {
    const owned = node.instances!.owned;
    for (;;) {
      const current = owned.get(reference);
      if (current && test(current)) return current;
      await once(owned, 'instance:changed');
    }
  }

  before(async () => {
    const folder = join(writeTree({}), 'hello');
    cpSync(HELLO, folder, { recursive: true });
    // The tree type: its profile rendered into the software root like instance.cfg.
    writeFileSync(join(folder, 'instance-tree.cfg.in'), TREE_PROFILE);
    writeFileSync(join(folder, 'instance-flaky.cfg.in'), FLAKY_PROFILE);
    writeFileSync(join(folder, 'instance-slow.cfg.in'), SLOW_PROFILE);
    writeFileSync(join(folder, 'software.cfg'), `${readFileSync(join(HELLO, 'software.cfg'), 'utf8').replace('  instance-profile\n', '  instance-profile\n  instance-tree\n  instance-flaky\n  instance-slow\n')}
[instance-tree]
recipe = slapos.recipe.template
url = \${:_profile_base_location_}/instance-tree.cfg.in
output = \${buildout:directory}/instance-tree.cfg

[instance-flaky]
recipe = slapos.recipe.template
url = \${:_profile_base_location_}/instance-flaky.cfg.in
output = \${buildout:directory}/instance-flaky.cfg

[instance-slow]
recipe = slapos.recipe.template
url = \${:_profile_base_location_}/instance-slow.cfg.in
output = \${buildout:directory}/instance-slow.cfg
`);
    a = await start();
    b = await start();
    c = await start();
    await callControl(a.options.dataDir, 'trust.add', { peer: b.peerId });
    const built = await a.supply(join(folder, 'software.cfg'));
    release = built.cid;
    await seesRelease(b, a.peerId, release);
    await seesRelease(c, a.peerId, release);
    dirs.push(join(folder, '..'));
  });

  after(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    dirs.splice(0).forEach(removeTree);
  });

  it('B requests hello with name=World and waits: placed on A, which has the release; its url answers World', async () => {
    const { instance, reached } = await request(b, { reference: 'hello', parameters: { name: 'World' }, waitMs: WAIT_MS });
    assert.equal(reached, true, JSON.stringify(instance));
    assert.deepEqual({ owner: instance.owner, host: instance.host, state: instance.state, status: instance.status, epoch: instance.epoch }, { owner: b.peerId, host: a.peerId, state: 'started', status: 'ready', epoch: 1 });
    assert.match(await get(instance.connection['url']!), /World/);
    const hosted = (await callControl(a.options.dataDir, 'instance.list', { hosted: true })) as InstanceJson[];
    assert.deepEqual(hosted.map((h) => [h.owner, h.reference, h.status]), [[b.peerId, 'hello', 'ready']]);
  });

  it('re-requesting the same reference updates it where it is (idempotent), with the new parameters', async () => {
    const { instance, reached } = await request(b, { reference: 'hello', parameters: { name: 'Mesh' }, waitMs: WAIT_MS });
    assert.equal(reached, true);
    assert.equal(instance.host, a.peerId);
    assert.equal(instance.epoch, 1);
    await ownedUntil(b, 'hello', (o) => o.status === 'ready');
    assert.match(await get(instance.connection['url']!), /Mesh/);
  });

  it('a third peer cannot stop or destroy it: at the protocol level, its messages only ever name its own instances', async () => {
    const intruder = await createTestNode();
    const lines: string[] = [];
    const client = instanceProtocol({})({ libp2p: intruder, logger: recordingLogger(lines) });
    try {
      const target = a.addresses().map((text) => multiaddr(text));
      const update = await client.update(target, { reference: 'hello', release, type: 'default', parameters: {}, state: 'destroyed', epoch: 99 }, {});
      assert.equal(update.ok, false);
      assert.equal(!update.ok && update.code, 'not-found');
      const status = await client.status(target, 'hello', {});
      assert.equal(status.ok, false);
    } finally {
      await intruder.stop();
    }
    const owned = b.instances!.owned.get('hello')!;
    assert.equal(owned.status, 'ready');
    assert.match(await get(owned.connection['url']!), /Mesh/);
  });

  it('an untrusted requester is refused, with the reason', async () => {
    await assert.rejects(request(c, { reference: 'mine', parameters: {}, peer: a.peerId }), (error: Error) => {
      assert.ok(error instanceof ControlError);
      assert.equal(error.remoteName, 'PlacementError');
      assert.match(error.message, new RegExp(`${a.peerId}: ${c.peerId} is not trusted by this node`));
      return true;
    });
    assert.equal(c.instances!.owned.get('mine'), undefined);
  });

  it('stop, start, destroy: the service stops and comes back; destroy frees the partition', async () => {
    const url = b.instances!.owned.get('hello')!.connection['url']!;
    const stopped = (await callControl(b.options.dataDir, 'instance.stop', { reference: 'hello' })) as InstanceJson;
    assert.equal(stopped.state, 'stopped');
    await ownedUntil(b, 'hello', (o) => o.status === 'stopped');
    assert.equal(await refused(url), true);

    await callControl(b.options.dataDir, 'instance.start', { reference: 'hello' });
    await ownedUntil(b, 'hello', (o) => o.status === 'ready' && o.state === 'started');
    assert.match(await get(url), /Mesh/);

    const partition = a.options.dataDir;
    await callControl(b.options.dataDir, 'instance.destroy', { reference: 'hello' });
    assert.equal(b.instances!.owned.get('hello'), undefined);
    assert.equal(await refused(url), true);
    assert.deepEqual(await callControl(a.options.dataDir, 'instance.list', { hosted: true }), []);
    for (const slot of readdirSync(join(partition, 'instances'))) assert.deepEqual(readdirSync(join(partition, 'instances', slot)), []);
    assert.equal(a.instances!.capacity().free, 3);
  });

  it('an instance tree: the parent requests a child of the same release and publishes the child\'s url', async () => {
    await request(b, { reference: 'tree', type: 'tree', parameters: {}, peer: a.peerId });
    const parent = await ownedUntil(b, 'tree', (o) => o.status === 'ready' && Boolean(o.connection['child-url']));
    assert.match(await get(parent.connection['child-url']!), /Child/);
    // The child is owned by the parent's host, recorded with its parent.
    const children = a.instances!.owned.list();
    assert.deepEqual(children.map((o) => [o.reference, o.parent]), [[`${b.peerId}/tree/child`, `${b.peerId}/tree`]]);
    // Destroying the parent destroys the child it requested.
    await callControl(b.options.dataDir, 'instance.destroy', { reference: 'tree' });
    while (a.instances!.owned.get(`${b.peerId}/tree/child`)) await once(a.instances!.owned, 'instance:changed');
    assert.deepEqual(await callControl(a.options.dataDir, 'instance.list', { hosted: true }), []);
  });

  it('a deployment that failed is tried again, with back-off, until it passes', async () => {
    const flag = join(dirs[0]!, 'flaky-flag');
    const params = { reference: 'flaky', type: 'flaky', parameters: { flag } };
    const failed = await request(b, { ...params, waitMs: WAIT_MS });
    assert.equal(failed.reached, false);
    assert.equal(failed.instance.status, 'failed');
    assert.match(failed.instance.message ?? '', /test -e .*flaky-flag[^]*\(trying again in 5 s\)$/);
    writeFileSync(flag, '');
    // Nothing asks for it again: the host's retry makes it ready.
    await ownedUntil(b, 'flaky', (owned) => owned.status === 'ready');
    await request(b, { ...params, state: 'destroyed', waitMs: WAIT_MS });
  });

  it('a deployment\'s progress reaches the owner, held back at most the gap between progress reports', async () => {
    const flag = join(dirs[0]!, 'slow-flag');
    const params = { reference: 'slow', type: 'slow', parameters: { flag }, peer: a.peerId };
    await request(b, params);
    // The buildout waits for the flag: the host's last step, held back for a while, still reaches the owner.
    await ownedUntil(b, 'slow', (o) => o.status === 'deploying' && o.message === 'running the instance profile');
    writeFileSync(flag, '');
    await ownedUntil(b, 'slow', (o) => o.status === 'ready');
    await request(b, { ...params, state: 'destroyed', waitMs: WAIT_MS });
  });

  it('a host building the release tells the owner which parts it is building, as progress', async () => {
    // hello, with a first part that waits until a file exists: the build holds still on that step.
    const flag = join(dirs[0]!, 'build-flag');
    const folder = join(writeTree({}), 'hello-waits');
    dirs.push(join(folder, '..'));
    cpSync(HELLO, folder, { recursive: true });
    writeFileSync(join(folder, 'software.cfg'), `${readFileSync(join(HELLO, 'software.cfg'), 'utf8').replace('parts =\n', 'parts =\n  wait\n')}
[wait]
recipe = plone.recipe.command
stop-on-error = true
command = while [ ! -e ${flag} ]; do sleep 0.05; done
`);
    const d = await start({ trust: [b.peerId] });
    while (!b.table.get(d.peerId)) await once(b.table, 'peer:updated');
    const params = { release: join(folder, 'software.cfg'), reference: 'built-there', parameters: { name: 'There' }, peer: d.peerId };
    const placed = await request(b, params);
    // The other parts build meanwhile (in parallel) and end: what is left building is the part that waits.
    const step = `supplying release ${placed.instance.release}: building wait`;
    await ownedUntil(b, 'built-there', (o) => o.status === 'deploying' && o.message === step);
    writeFileSync(flag, '');
    await ownedUntil(b, 'built-there', (o) => o.status === 'ready');
    await request(b, { ...params, state: 'destroyed', waitMs: WAIT_MS });
  });

  it('a deployment quicker than the gap between progress reports reaches its owner as one report: ready', async () => {
    const d = await start({ trust: [a.peerId, b.peerId], progressReportGapMs: 3_600_000 });
    while (!b.table.get(d.peerId)) await once(b.table, 'peer:updated');
    const seen: string[] = [];
    const record = (event: Event) => {
      const owned = (event as CustomEvent<StoredOwned>).detail;
      if (owned.reference === 'quick' && seen.at(-1) !== owned.status) seen.push(owned.status);
    };
    b.instances!.owned.addEventListener('instance:changed', record);
    try {
      const { reached } = await request(b, { reference: 'quick', parameters: { name: 'Quick' }, peer: d.peerId, waitMs: WAIT_MS });
      assert.equal(reached, true);
    } finally {
      b.instances!.owned.removeEventListener('instance:changed', record);
    }
    assert.deepEqual(seen.filter((status) => status !== 'placing'), ['placed', 'ready']);
    await request(b, { reference: 'quick', parameters: { name: 'Quick' }, peer: d.peerId, state: 'destroyed', waitMs: WAIT_MS });
  });

  it('A restarted brings its instances back, after asking their owner', async () => {
    const placed = await request(b, { reference: 'again', parameters: { name: 'Again' }, peer: a.peerId, waitMs: WAIT_MS });
    assert.equal(placed.reached, true);
    const before = b.instances!.owned.get('again')!.updatedAt;
    const dataDir = a.options.dataDir;
    await a.stop();
    nodes.splice(nodes.indexOf(a), 1);
    a = new SlapmeshNode({ ...a.options, dataDir, listen: ['/ip4/127.0.0.1/tcp/0'] });
    await a.start();
    nodes.push(a);
    await b.dial(a.addresses()[0]!);
    const back = await ownedUntil(b, 'again', (o) => o.status === 'ready' && o.updatedAt > before);
    assert.match(await get(back.connection['url']!), /Again/);
    assert.ok(existsSync(join(dataDir, 'instances')));
  });
});

