// Instances with nodes as processes, killed with SIGKILL (issue 6's faults): a host killed and started
// again reaps the services it left running and brings its instance back; a host that stays away has its
// instance moved by the owner, and when it returns it destroys its superseded copy — as does a host that was
// frozen rather than killed, once it notices that the owner stopped renewing its lease.
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { groupAlive } from '../../node/supervisor.js';
import { cli, startNode, stop, type Started } from '../helpers/processes.js';
import { removeTree, writeTree } from '../helpers/files.js';

const HELLO = fileURLToPath(new URL('../../../examples/hello', import.meta.url));
/** Owners move an instance whose host has been unreachable this long. */
const LEASE_MS = 1500;

interface Node extends Started {
  dataDir: string;
  /**
   * Resolves with the first line the node has logged since it started that matches `pattern`, now or once it
   * comes. Lines before the call count: a line logged in the same burst as the one awaited before, or
   * while the node was starting, is not missed.
   */
  logs(pattern: RegExp): Promise<string>;
}

async function start(dataDir: string, args: string[] = []): Promise<Node> {
  const started = await startNode(['node', 'start', '--data-dir', dataDir, '--verbose', ...args], { SLAPMESH_HOSTING_LEASE_MS: String(LEASE_MS) });
  const stderr = started.child.stderr!;
  return {
    ...started, dataDir,
    logs: (pattern) => new Promise((resolve) => {
      let scanned = 0;
      // startNode's own listener came first: the text already holds what this event brought.
      const scan = () => {
        const text = started.stderr();
        const end = text.lastIndexOf('\n') + 1;
        const line = text.slice(scanned, end).split('\n').find((candidate) => pattern.test(candidate));
        scanned = end;
        if (line === undefined) return;
        stderr.off('data', scan);
        resolve(line);
      };
      stderr.on('data', scan);
      scan();
    }),
  };
}

async function kill(node: Node): Promise<void> {
  node.child.kill('SIGKILL');
  if (node.child.exitCode === null && node.child.signalCode === null) await once(node.child, 'exit');
}

/** The process groups the node recorded for its services (read as another process would). */
function recordedGroups(dataDir: string): number[] {
  const db = new DatabaseSync(join(dataDir, 'node.db'), { readOnly: true });
  try {
    return db.prepare('SELECT pgid FROM services').all().map((row) => Number(row['pgid']));
  } finally {
    db.close();
  }
}

/** A group whose processes are all zombies (waiting for init to collect them) counts as gone. */
const alive = groupAlive;

async function greeting(url: string): Promise<string> {
  return (await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text()).trim();
}

describe('cli: instances with nodes killed and restarted', function () {
  this.timeout(180_000);
  const dirs: string[] = [];
  const nodes: Node[] = [];
  let owner: Node;
  let release: string;

  const dir = () => {
    const d = writeTree({});
    dirs.push(d);
    return d;
  };

  async function host(args: string[] = []): Promise<Node> {
    const node = await start(dir(), ['--bootstrap', owner.addresses[0]!, '--trust', owner.peerId, '--trust-any-builder', ...args]);
    nodes.push(node);
    return node;
  }

  before(async () => {
    // The owner hosts nothing itself: instances go where the tests say.
    owner = await start(dir(), ['--partitions', '0']);
    nodes.push(owner);
    const folder = join(dir(), 'hello');
    cpSync(HELLO, folder, { recursive: true });
    const supplied = await cli('supply', folder, '--data-dir', owner.dataDir, '--json');
    assert.equal(supplied.code, 0, supplied.stderr);
    release = (JSON.parse(supplied.stdout) as { cid: string }).cid;
  });

  after(async () => {
    await Promise.all(nodes.splice(0).map((node) => stop(node)));
    dirs.splice(0).forEach(removeTree);
  });

  it('a host killed with SIGKILL and started again reaps the services it left running, then brings the instance back', async () => {
    const a = await host();
    const requested = await cli('request', 'hello', release, '--param', 'name=World', '--peer', a.peerId, '--wait', '--timeout', '60', '--json', '--data-dir', owner.dataDir);
    assert.equal(requested.code, 0, requested.stderr);
    const { url } = (JSON.parse(requested.stdout) as { connection: { url: string } }).connection;
    assert.match(await greeting(url), /World/);

    await kill(a);
    const [left] = recordedGroups(a.dataDir);
    assert.ok(left !== undefined && alive(left), 'the killed node left its service running');
    assert.match(await greeting(url), /World/);

    const again = await start(a.dataDir, ['--bootstrap', owner.addresses[0]!]);
    nodes.splice(nodes.indexOf(a), 1, again);
    await again.logs(new RegExp(`${owner.peerId}/hello ready`));
    assert.equal(alive(left), false, 'the service left running was stopped first');
    const [now] = recordedGroups(a.dataDir);
    assert.ok(now !== undefined && now !== left && alive(now));
    assert.match(await greeting(url), /World/);
  });

  it('a host that stays away: the owner moves the instance with a higher epoch; back, the old host destroys its copy', async () => {
    const a = await host();
    await host(); // a second host, for the move
    const requested = await cli('request', 'moved', release, '--param', 'name=Moved', '--peer', a.peerId, '--wait', '--timeout', '60', '--json', '--data-dir', owner.dataDir);
    assert.equal(requested.code, 0, requested.stderr);
    assert.equal((JSON.parse(requested.stdout) as { epoch: number }).epoch, 1);

    const moving = owner.logs(new RegExp(`moving moved off ${a.peerId}`));
    const placed = owner.logs(/moved placed on \S+ \(epoch 2\)/);
    await kill(a);
    const [left] = recordedGroups(a.dataDir);
    await moving;
    await placed;
    // The same request again (no --peer) waits for it where it is now.
    const again = await cli('request', 'moved', release, '--param', 'name=Moved', '--wait', '--timeout', '60', '--json', '--data-dir', owner.dataDir);
    assert.equal(again.code, 0, again.stderr);
    const instance = JSON.parse(again.stdout) as { host: string; epoch: number; status: string; connection: { url: string } };
    assert.notEqual(instance.host, a.peerId);
    assert.deepEqual({ epoch: instance.epoch, status: instance.status }, { epoch: 2, status: 'ready' });
    assert.match(await greeting(instance.connection.url), /Moved/);

    // A comes back: it asks the owner, learns its copy was superseded, and destroys it.
    const back = await start(a.dataDir, ['--bootstrap', owner.addresses[0]!]);
    nodes.splice(nodes.indexOf(a), 1, back);
    await back.logs(/moved destroyed/);
    assert.equal(left !== undefined && alive(left), false);
    const hosted = await cli('instance', 'list', '--hosted', '--json', '--data-dir', back.dataDir);
    assert.deepEqual(JSON.parse(hosted.stdout), []);
    assert.match(await greeting(instance.connection.url), /Moved/);
  });

  it('a host frozen (SIGSTOP), not killed: the owner moves the instance; thawed, the old host hears no renewal, asks, and destroys its copy', async () => {
    const a = await host();
    await host(); // a second host, for the move
    const requested = await cli('request', 'frozen', release, '--param', 'name=Frozen', '--peer', a.peerId, '--wait', '--timeout', '60', '--json', '--data-dir', owner.dataDir);
    assert.equal(requested.code, 0, requested.stderr);
    const [left] = recordedGroups(a.dataDir);

    a.child.kill('SIGSTOP');
    try {
      await owner.logs(/frozen placed on \S+ \(epoch 2\)/);
      // The owner tells the old host to destroy its copy at once; frozen, A does not hear it. (Thawed before
      // that call gives up, A might take the destroy from it instead of asking: either way is right.)
      await owner.logs(new RegExp(`frozen: its old host ${a.peerId} was not told to destroy its copy`));
    } finally {
      a.child.kill('SIGCONT');
    }
    // A never restarted and has nothing to report: only the owner's silence tells it to ask.
    await a.logs(/frozen epoch 1 was superseded: destroying this copy/);
    await a.logs(/frozen destroyed/);
    assert.equal(left !== undefined && alive(left), false);
    const hosted = await cli('instance', 'list', '--hosted', '--json', '--data-dir', a.dataDir);
    assert.deepEqual(JSON.parse(hosted.stdout), []);
    const again = await cli('request', 'frozen', release, '--param', 'name=Frozen', '--wait', '--timeout', '60', '--json', '--data-dir', owner.dataDir);
    const instance = JSON.parse(again.stdout) as { host: string; epoch: number; connection: { url: string } };
    assert.deepEqual({ epoch: instance.epoch, elsewhere: instance.host !== a.peerId }, { epoch: 2, elsewhere: true });
    assert.match(await greeting(instance.connection.url), /Frozen/);
  });

  it('capacity is never exceeded: a node with one partition refuses a second instance, with the reason', async () => {
    const small = await host(['--partitions', '1']);
    const first = await cli('request', 'one', release, '--peer', small.peerId, '--json', '--data-dir', owner.dataDir);
    assert.equal(first.code, 0, first.stderr);
    const second = await cli('request', 'two', release, '--peer', small.peerId, '--json', '--data-dir', owner.dataDir);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /no peer accepted two: .*no free partition \(all 1 in use\)/);
  });
});
