import { strict as assert } from 'node:assert';
import * as os from 'node:os';
import { join } from 'node:path';
import { probeHardware } from '../../node/hardware.js';
import { removeTree, writeTree } from '../helpers/files.js';

describe('node/hardware', () => {
  let dir: string;

  before(() => {
    dir = writeTree({});
  });

  after(() => {
    removeTree(dir);
  });

  it('describes this machine', async () => {
    const hardware = await probeHardware(dir, { total: 10, used: 3 });
    assert.deepEqual(Object.keys(hardware).sort(),
      ['arch', 'cpuModel', 'cpus', 'disk', 'freeMemory', 'libc', 'load', 'memory', 'os', 'partitions'].sort());
    assert.ok(Number.isInteger(hardware.cpus) && hardware.cpus >= 1, `cpus ${hardware.cpus}`);
    assert.ok(hardware.cpuModel.length > 0);
    assert.ok(Number.isSafeInteger(hardware.memory) && hardware.memory > 0);
    assert.ok(hardware.memory <= os.totalmem());
    assert.ok(Number.isSafeInteger(hardware.freeMemory) && hardware.freeMemory > 0);
    assert.ok(Number.isSafeInteger(hardware.disk) && hardware.disk > 0);
    assert.equal(hardware.arch, os.arch());
    assert.match(hardware.libc, /^(glibc\d+\.\d+|musl|unknown)$/);
    assert.equal(hardware.os, `${os.platform()}-${os.arch()}-${hardware.libc}`);
    assert.match(hardware.os, /^[a-z0-9]+-[a-z0-9_]+-(glibc\d+\.\d+|musl|unknown)$/);
    assert.equal(hardware.load.length, 3);
    for (const load of hardware.load) assert.ok(Number.isFinite(load) && load >= 0);
    assert.deepEqual(hardware.partitions, { total: 10, free: 7 });
  });

  it('names the glibc node runs with', async function () {
    const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
    if (header?.glibcVersionRuntime === undefined) this.skip();
    const hardware = await probeHardware(dir, { total: 0, used: 0 });
    assert.equal(hardware.libc, `glibc${header.glibcVersionRuntime}`);
  });

  it('reads the fixed facts once and the changing ones every time', async () => {
    const first = await probeHardware(dir, { total: 4, used: 0 });
    const second = await probeHardware(dir, { total: 4, used: 6 });
    const fixed = ({ cpus, cpuModel, memory, arch, os: platform, libc }: typeof first) => ({ cpus, cpuModel, memory, arch, platform, libc });
    assert.deepEqual(fixed(second), fixed(first));
    assert.deepEqual(second.partitions, { total: 4, free: 0 });
  });

  it('fails on a data directory that does not exist', async () => {
    await assert.rejects(probeHardware(join(dir, 'missing'), { total: 1, used: 0 }), { code: 'ENOENT' });
  });
});
