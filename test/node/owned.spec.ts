// The owner's side of placement with its hosts stubbed (the mesh tests run it with real ones): a host that
// dies between reserve and confirm, refusals with reasons, epochs, stale reports, and moves.
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { InvalidInstanceRequestError, OwnedInstances, PlacementError, type HostApi } from '../../node/owned.js';
import { PlacementIndex } from '../../node/placement.js';
import { NodeStore, STORE_FILE, type InstanceRequest } from '../../node/store.js';
import { seededRandom } from '../../simulations/random.js';
import type { Answer, InstanceView } from '../../protocols/instance/index.js';
import { removeTree, writeTree } from '../helpers/files.js';
import { recordingLogger } from '../helpers/nodes.js';

// A CID as the protocol wants it (the hello release's).
const RELEASE = 'bagaaieraay5uw4scuwfx47xgl3xg3cqobsytitngsvplbhexbrjdm5aytryq';

/** A host as the owner sees it: what it was asked, and how it answers (or fails) each call. */
class FakeHost implements HostApi {
  readonly calls: string[] = [];
  reserveAnswer: () => Answer<{ lease: number }> = () => ({ ok: true, lease: 10_000 });
  confirmAnswer: () => Answer<object> = () => ({ ok: true });

  async reserve(request: InstanceRequest): Promise<Answer<{ lease: number }>> {
    this.calls.push(`reserve ${request.reference}`);
    return this.reserveAnswer();
  }

  async confirm(reference: string, epoch: number): Promise<Answer<object>> {
    this.calls.push(`confirm ${reference} ${epoch}`);
    return this.confirmAnswer();
  }

  async update(request: InstanceRequest & { epoch: number }): Promise<Answer<{ instance: InstanceView }>> {
    this.calls.push(`update ${request.reference} ${request.epoch} ${request.state}`);
    return { ok: true, instance: { ...request, status: request.state === 'destroyed' ? 'destroyed' : 'deploying', connection: {} } };
  }

  async renew(instances: { reference: string; epoch: number }[]): Promise<Answer<{ unknown: string[] }>> {
    this.calls.push(`renew ${instances.map((i) => i.reference).join(',')}`);
    return { ok: true, unknown: [] };
  }
}

describe('node/owned: placing what this node requests', () => {
  let dir: string;
  let store: NodeStore;
  let index: PlacementIndex;
  let hosts: Map<string, FakeHost>;
  let owned: OwnedInstances;
  let clock: number;

  const request = (reference: string): InstanceRequest => ({ reference, release: RELEASE, type: 'default', parameters: {}, state: 'started' });

  beforeEach(() => {
    dir = writeTree({});
    store = NodeStore.open(join(dir, STORE_FILE));
    // Ranking order: p1 holds the release and is emptier than p2, which holds it too; p3 does not.
    index = new PlacementIndex(() => 0);
    index.update({ peerId: 'p1', releases: [RELEASE], free: 10, total: 10, load: 0 });
    index.update({ peerId: 'p2', releases: [RELEASE], free: 5, total: 10, load: 0 });
    index.update({ peerId: 'p3', releases: [], free: 10, total: 10, load: 0 });
    hosts = new Map(['p1', 'p2', 'p3'].map((id) => [id, new FakeHost()]));
    clock = 1_000;
    owned = new OwnedInstances({
      store, index, log: recordingLogger([]), leaseMs: 1_000, now: () => clock,
      host: (peer) => {
        const host = hosts.get(peer);
        if (!host) throw new Error(`no route to ${peer}`);
        return host;
      },
    });
  });

  afterEach(() => {
    store.close();
    removeTree(dir);
  });

  it('ranks the peers holding the release first, the emptier first', () => {
    assert.deepEqual(index.rank(RELEASE, { limit: 5 }), ['p1', 'p2', 'p3']);
  });

  it('the chosen host dies before confirming: the instance goes to the next one with a higher epoch; the first one is told to drop it, its reports are stale', async () => {
    hosts.get('p1')!.confirmAnswer = () => {
      throw new Error('connection reset');
    };
    const placed = await owned.request(request('web'));
    assert.deepEqual({ host: placed.host, epoch: placed.epoch, status: placed.status }, { host: 'p2', epoch: 2, status: 'placed' });
    // p1 did not answer the confirmation: it is told to drop epoch 1, in case it landed.
    assert.deepEqual(hosts.get('p1')!.calls, ['reserve web', 'confirm web 1', 'update web 1 destroyed']);
    assert.deepEqual(hosts.get('p2')!.calls, ['reserve web', 'confirm web 2']);
    // Had p1 deployed epoch 1 after all, what it reports is refused as stale (it then destroys its copy).
    assert.deepEqual(owned.report('p1', { reference: 'web', epoch: 1, status: 'ready', connection: {} }), { ok: false, code: 'stale', reason: 'web epoch 1 is not placed on p1' });
    assert.deepEqual(owned.check('p1', 'web', 1), { ok: true, current: false });
    assert.deepEqual(owned.report('p2', { reference: 'web', epoch: 2, status: 'ready', connection: { url: 'u' } }), { ok: true });
    assert.deepEqual(owned.get('web')?.connection, { url: 'u' });
  });

  it('every peer refusing: PlacementError with each one\'s reason, and nothing recorded', async () => {
    for (const host of hosts.values()) host.reserveAnswer = () => ({ ok: false, code: 'refused', reason: 'no free partition (all 10 in use)' });
    await assert.rejects(owned.request(request('web')), (error: Error) => {
      assert.ok(error instanceof PlacementError);
      assert.equal(error.message, 'no peer accepted web: p1: no free partition (all 10 in use); p2: no free partition (all 10 in use); p3: no free partition (all 10 in use)');
      return true;
    });
    assert.equal(owned.get('web'), undefined);
  });

  it('asks on past full hosts while it has tries left (16), but gives up after 5 that do not answer', async () => {
    // Twelve holders of the release: the eight that look emptiest are full in fact (an advert-old view).
    const wide = new PlacementIndex(seededRandom(7));
    const fleet = new Map<string, FakeHost>();
    for (let i = 1; i <= 12; i++) {
      const full = i <= 8;
      wide.update({ peerId: `h${i}`, releases: [RELEASE], free: full ? 10 : 1, total: 10, load: 0 });
      const host = new FakeHost();
      if (full) host.reserveAnswer = () => ({ ok: false, code: 'refused', reason: 'no free partition (all 10 in use)' });
      fleet.set(`h${i}`, host);
    }
    const owner = new OwnedInstances({ store, index: wide, log: recordingLogger([]), now: () => clock, host: (peer) => fleet.get(peer)! });
    const placed = await owner.request(request('web'));
    assert.match(placed.host!, /^h(9|1[0-2])$/);
    assert.equal([...fleet.values()].filter((host) => host.calls.includes('reserve web')).length, 9, 'the eight full ones, then one with room');

    // Twelve that do not answer: five are asked, then the request fails with their reasons.
    const silent = new PlacementIndex(seededRandom(8));
    const asked: string[] = [];
    for (let i = 1; i <= 12; i++) silent.update({ peerId: `s${i}`, releases: [RELEASE], free: 10, total: 10, load: 0 });
    const lost = new OwnedInstances({
      store, index: silent, log: recordingLogger([]), now: () => clock,
      host: (peer) => {
        asked.push(peer);
        throw new Error('no route');
      },
    });
    await assert.rejects(lost.request(request('db')), (error: Error) => error instanceof PlacementError && error.message.split('cannot be reached').length === 6);
    assert.equal(asked.length, 5);
  });

  it('re-requesting updates where it is; a host unreachable longer than the lease has its instance moved, with the next epoch', async () => {
    await owned.request(request('web'));
    await owned.request({ ...request('web'), parameters: { name: 'x' } });
    assert.deepEqual(hosts.get('p1')!.calls, ['reserve web', 'confirm web 1', 'update web 1 started']);
    owned.start();
    try {
      hosts.delete('p1');
      await owned.renewLeases(); // unreachable, but not for longer than the lease yet
      assert.equal(owned.get('web')?.host, 'p1');
      clock += 1_001;
      const moved = new Promise((resolve) => owned.addEventListener('instance:changed', (event) => event.detail.host === 'p2' && resolve(event.detail)));
      await owned.renewLeases();
      await moved;
      assert.deepEqual({ host: owned.get('web')?.host, epoch: owned.get('web')?.epoch }, { host: 'p2', epoch: 2 });
      assert.deepEqual(owned.get('web')?.parameters, { name: 'x' });
    } finally {
      owned.stop();
    }
  });

  it('a host unreachable with no other peer to take its instance: it stays placed there, with what it reported during the try, and is current when it returns', async () => {
    await owned.request(request('web'));
    const refused = (): Answer<{ lease: number }> => ({ ok: false, code: 'refused', reason: 'full' });
    hosts.get('p3')!.reserveAnswer = refused;
    // p1 was only slow: its report comes in while the owner is trying to move the instance.
    let reportedDuringTheMove: Answer<object> | undefined;
    hosts.get('p2')!.reserveAnswer = () => {
      reportedDuringTheMove = owned.report('p1', { reference: 'web', epoch: 1, status: 'ready', connection: { url: 'http://p1/' } });
      return refused();
    };
    const away = hosts.get('p1')!;
    hosts.delete('p1');
    owned.start();
    try {
      await owned.renewLeases();
      clock += 1_001;
      await owned.renewLeases();
      await owned.request(request('web')).catch(() => undefined); // queued after the move attempt: waits for it to settle
      assert.deepEqual(hosts.get('p2')!.calls, ['reserve web']);
      assert.deepEqual(reportedDuringTheMove, { ok: true });
      const record = owned.get('web');
      assert.deepEqual({ host: record?.host, epoch: record?.epoch, status: record?.status, connection: record?.connection }, { host: 'p1', epoch: 1, status: 'ready', connection: { url: 'http://p1/' } });
      hosts.set('p1', away);
      assert.deepEqual(owned.check('p1', 'web', 1), { ok: true, current: true });
    } finally {
      owned.stop();
    }
  });

  it('a request the protocol could not carry is refused before any host is asked (a child reference too long, say)', async () => {
    await assert.rejects(owned.request(request('x'.repeat(300))), (error: Error) => error instanceof InvalidInstanceRequestError && /reference/.test(error.message));
    await assert.rejects(owned.request({ ...request('web'), release: 'not-a-cid' }), InvalidInstanceRequestError);
    assert.deepEqual([...hosts.values()].flatMap((host) => host.calls), []);
    assert.deepEqual(owned.list(), []);
  });
});

