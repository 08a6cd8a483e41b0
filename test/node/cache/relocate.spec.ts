import { strict as assert } from 'node:assert';
import { chmodSync, linkSync, readFileSync, readlinkSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILD_PREFIX_LENGTH, paddedPrefix, relocateTree } from '../../../node/cache/relocate.js';
import { removeTree, writeTree } from '../../helpers/files.js';

describe('node/cache/relocate', () => {
  const from = paddedPrefix('/opt/build');
  const to = '/srv/slapmesh/software/0123abcd';

  describe('paddedPrefix', () => {
    it('pads the base to exactly BUILD_PREFIX_LENGTH characters', () => {
      assert.equal(from.length, BUILD_PREFIX_LENGTH);
      assert.match(from, /^\/opt\/build\/_slapmesh_build_prefix_+$/);
      assert.equal(paddedPrefix('/opt/build/'), from);
    });

    it('refuses a base that leaves no room for the padding folder', () => {
      assert.throws(() => paddedPrefix(`/${'x'.repeat(150)}`), { name: 'RelocationError' });
    });
  });

  describe('relocateTree', () => {
    let tree: string;

    beforeEach(() => {
      tree = writeTree({});
    });

    afterEach(() => {
      removeTree(tree);
    });

    it('replaces the prefix in text files, to a shorter or a longer prefix, keeping modes', async () => {
      const script = `#!${from}/bin/python\nexec ${from}/bin/run --config=${from}/etc/run.conf\n`;
      writeFileSync(join(tree, 'run'), script, { mode: 0o755 });
      writeFileSync(join(tree, 'read-only.cfg'), `prefix = ${from}\n`, { mode: 0o444 });
      chmodSync(join(tree, 'read-only.cfg'), 0o444);

      assert.deepEqual(await relocateTree(tree, from, to), { files: 2, rewritten: 2 });
      assert.equal(readFileSync(join(tree, 'run'), 'utf8'), `#!${to}/bin/python\nexec ${to}/bin/run --config=${to}/etc/run.conf\n`);
      assert.equal(readFileSync(join(tree, 'read-only.cfg'), 'utf8'), `prefix = ${to}\n`);
      assert.equal(statSync(join(tree, 'run')).mode & 0o7777, 0o755);
      assert.equal(statSync(join(tree, 'read-only.cfg')).mode & 0o7777, 0o444);

      const longer = `${from}/and/longer/still`;
      await relocateTree(tree, to, longer);
      assert.equal(readFileSync(join(tree, 'read-only.cfg'), 'utf8'), `prefix = ${longer}\n`);
    });

    it('rewrites NUL-terminated strings of binaries in place, padded with NULs', async () => {
      const before = Buffer.concat([
        Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2]),
        Buffer.from(`-L${from}/lib -I${from}/include\0`),
        Buffer.from(`${from}/share/data\0\0other string\0`),
        Buffer.from(`tail without NUL ${from}`),
      ]);
      writeFileSync(join(tree, 'program'), before, { mode: 0o755 });

      assert.deepEqual(await relocateTree(tree, from, to), { files: 1, rewritten: 1 });
      const after = readFileSync(join(tree, 'program'));
      const shrink = from.length - to.length;
      const expected = Buffer.concat([
        Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2]),
        Buffer.from(`-L${to}/lib -I${to}/include`), Buffer.alloc(2 * shrink), Buffer.from('\0'),
        Buffer.from(`${to}/share/data`), Buffer.alloc(shrink), Buffer.from('\0\0other string\0'),
        Buffer.from(`tail without NUL ${to}`), Buffer.alloc(shrink),
      ]);
      assert.equal(after.length, before.length);
      assert.deepEqual(after, expected);
      assert.equal(statSync(join(tree, 'program')).mode & 0o7777, 0o755);
    });

    it('refuses to lengthen the prefix in a binary, naming the file', async () => {
      writeFileSync(join(tree, 'program'), `\0${from}/lib\0`);
      await assert.rejects(relocateTree(tree, from, `${from}/longer`), (error: Error) => {
        assert.equal(error.name, 'RelocationError');
        assert.match(error.message, /program/);
        return true;
      });
    });

    it('re-points links into the old prefix, and follows no link to a folder', async () => {
      const outside = writeTree({ 'file.cfg': `prefix = ${from}\n` });
      try {
        symlinkSync(`${from}/lib/libz.so.1`, join(tree, 'absolute'));
        symlinkSync('libz.so.1', join(tree, 'relative'));
        symlinkSync('/usr/lib', join(tree, 'elsewhere'));
        symlinkSync(outside, join(tree, 'folder'));

        assert.deepEqual(await relocateTree(tree, from, to), { files: 4, rewritten: 1 });
        assert.equal(readlinkSync(join(tree, 'absolute')), `${to}/lib/libz.so.1`);
        assert.equal(readlinkSync(join(tree, 'relative')), 'libz.so.1');
        assert.equal(readlinkSync(join(tree, 'elsewhere')), '/usr/lib');
        assert.equal(readFileSync(join(outside, 'file.cfg'), 'utf8'), `prefix = ${from}\n`);
      } finally {
        removeTree(outside);
      }
    });

    it('leaves files without the prefix unwritten, and rewrites hard links once', async () => {
      writeFileSync(join(tree, 'plain'), 'no prefix here\n');
      writeFileSync(join(tree, 'blob'), Buffer.from([0, 1, 2, 3, 0]));
      utimesSync(join(tree, 'plain'), 1000, 1000);
      utimesSync(join(tree, 'blob'), 1000, 1000);
      writeFileSync(join(tree, 'lib.la'), `libdir='${from}/lib'\n`);
      linkSync(join(tree, 'lib.la'), join(tree, 'lib.la.hardlink'));

      assert.deepEqual(await relocateTree(tree, from, to), { files: 4, rewritten: 1 });
      assert.equal(statSync(join(tree, 'plain')).mtimeMs, 1000_000);
      assert.equal(statSync(join(tree, 'blob')).mtimeMs, 1000_000);
      assert.equal(readFileSync(join(tree, 'lib.la.hardlink'), 'utf8'), `libdir='${to}/lib'\n`);
      assert.equal(statSync(join(tree, 'lib.la')).ino, statSync(join(tree, 'lib.la.hardlink')).ino);
    });
  });
});
