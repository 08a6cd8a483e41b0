// The scenarios' harness: nodes as processes of their own, reached through their control sockets, killed
// with SIGKILL and started again on the same data directory, everything stopped and removed at the end.
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { Mesh } from '../../simulations/mesh.js';

describe('simulations: the mesh harness', function () {
  this.timeout(60_000);

  it('starts nodes whose PeerIds are known beforehand, kills one with SIGKILL, starts it again on its data directory and port, and removes everything when stopped', async () => {
    const mesh = await Mesh.create({ nodes: 2, spec: (i, ids) => ({ partitions: 1, trust: ids.filter((_, j) => j !== i) }) });
    let stopped = false;
    try {
      const [first, second] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];
      assert.match(first.peerId, /^12D3KooW/);
      await mesh.start();
      assert.deepEqual(mesh.aliveNodes(), [first, second]);
      assert.equal(first.startMs.length, 1);
      assert.deepEqual(await second.call('trust.list'), [first.peerId]);
      const port = second.port;
      const pid = second.child!.pid!;

      await mesh.kill(second);
      assert.equal(second.alive, false);
      assert.equal(second.kills, 1);
      assert.throws(() => process.kill(pid, 0), /ESRCH/);
      await mesh.startNode(second);
      assert.equal(second.port, port, 'it listens where its peers knew it');
      assert.equal(((await second.call('status')) as { peerId: string }).peerId, second.peerId);
      assert.deepEqual(mesh.alive.map(([, count]) => count), [0, 1, 2, 1, 2]);

      await mesh.stop();
      stopped = true;
      assert.equal(mesh.aliveNodes().length, 0);
      assert.equal(existsSync(mesh.root), false);
    } finally {
      if (!stopped) await mesh.stop();
    }
  });
});
