import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create, Header, type HeaderData } from 'tar';
import { extractArchive } from '../../../engine/install/archive.js';
import { removeTree, writeTree } from '../../helpers/files.js';

interface RawEntry {
  path: string;
  type?: HeaderData['type'];
  linkpath?: string;
  body?: string;
}

/** A tar archive with exactly these headers: what node-tar and GNU tar refuse to create. */
function rawTar(entries: readonly RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '');
    const header = new Header({
      path: entry.path, type: entry.type ?? 'File', linkpath: entry.linkpath ?? '', size: body.length,
      mode: 0o644, uid: 0, gid: 0, mtime: new Date(0),
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

describe('engine/install/archive', () => {
  let source: string;
  let archives: string;
  let work: string;

  before(async () => {
    source = writeTree({ 'pkg-1.0/README': 'readme\n', 'pkg-1.0/src/main.c': 'int main(void) { return 0; }\n', 'other/file': 'x' });
    symlinkSync('../README', join(source, 'pkg-1.0/src/README.link'));
    archives = writeTree({});
    await create({ file: join(archives, 'pkg.tar'), cwd: source }, ['pkg-1.0']);
    await create({ file: join(archives, 'pkg.tar.gz'), cwd: source, gzip: true }, ['pkg-1.0']);
    await create({ file: join(archives, 'two.tgz'), cwd: source, gzip: true }, ['pkg-1.0', 'other']);
    execFileSync('tar', ['-cJf', join(archives, 'pkg.tar.xz'), '-C', source, 'pkg-1.0']);
    execFileSync('tar', ['-cjf', join(archives, 'pkg.tar.bz2'), '-C', source, 'pkg-1.0']);
    execFileSync('zip', ['-qry', join(archives, 'pkg.zip'), 'pkg-1.0'], { cwd: source });
  });

  after(() => {
    removeTree(source);
    removeTree(archives);
  });

  beforeEach(() => {
    work = writeTree({});
  });

  afterEach(() => {
    removeTree(work);
  });

  function assertPackage(root: string): void {
    assert.equal(readFileSync(join(root, 'README'), 'utf8'), 'readme\n');
    assert.equal(readFileSync(join(root, 'src/main.c'), 'utf8'), 'int main(void) { return 0; }\n');
    assert.equal(readlinkSync(join(root, 'src/README.link')), '../README');
    assert.equal(readFileSync(join(root, 'src/README.link'), 'utf8'), 'readme\n');
  }

  for (const name of ['pkg.tar', 'pkg.tar.gz', 'pkg.tar.xz', 'pkg.tar.bz2', 'pkg.zip']) {
    it(`extracts ${name}, with and without its top-level folder`, async () => {
      await extractArchive(join(archives, name), join(work, 'whole'));
      assert.deepEqual(readdirSync(join(work, 'whole')), ['pkg-1.0']);
      assertPackage(join(work, 'whole/pkg-1.0'));

      await extractArchive(join(archives, name), join(work, 'deeper/stripped'), { stripTopLevel: true });
      assert.deepEqual(readdirSync(join(work, 'deeper/stripped')).sort(), ['README', 'src']);
      assertPackage(join(work, 'deeper/stripped'));
      assert.deepEqual(readdirSync(work).sort(), ['deeper', 'whole']);
    });
  }

  it('does not strip when the archive has several top-level entries', async () => {
    await extractArchive(join(archives, 'two.tgz'), join(work, 'dest'), { stripTopLevel: true });
    assert.deepEqual(readdirSync(join(work, 'dest')).sort(), ['other', 'pkg-1.0']);
  });

  it('extracts into an empty folder, and refuses a folder that is not empty', async () => {
    mkdirSync(join(work, 'empty'));
    await extractArchive(join(archives, 'pkg.tar.gz'), join(work, 'empty'), { stripTopLevel: true });
    assertPackage(join(work, 'empty'));

    await assert.rejects(extractArchive(join(archives, 'pkg.tar.gz'), join(work, 'empty')), {
      name: 'ArchiveError',
      message: `cannot extract into ${join(work, 'empty')}: it is not empty`,
    });
    assert.deepEqual(readdirSync(join(work, 'empty')).sort(), ['README', 'src']);
  });

  it('refuses an archive it cannot read, leaving nothing', async () => {
    writeFileSync(join(work, 'junk.tar.gz'), 'not an archive at all');
    await assert.rejects(extractArchive(join(work, 'junk.tar.gz'), join(work, 'dest')), { name: 'ArchiveError' });
    await assert.rejects(extractArchive(join(work, 'missing.tar.xz'), join(work, 'dest')), { name: 'ArchiveError' });
    assert.deepEqual(readdirSync(work), ['junk.tar.gz']);
  });

  describe('refuses unsafe archives whole, leaving nothing', () => {
    const cases: readonly (readonly [string, readonly RawEntry[], string])[] = [
      ['a path with ..', [{ path: 'pkg/ok', body: 'ok' }, { path: '../x', body: 'evil' }], "entry '../x' contains '..'"],
      ['a nested path with ..', [{ path: 'pkg/../../x', body: 'evil' }], "entry 'pkg/../../x' contains '..'"],
      ['an absolute path', [{ path: '/tmp/slapmesh-evil', body: 'evil' }], "entry '/tmp/slapmesh-evil' is an absolute path"],
      ['a symlink to ../../etc', [{ path: 'pkg/', type: 'Directory' }, { path: 'pkg/etc', type: 'SymbolicLink', linkpath: '../../etc' }],
        "entry 'pkg/etc' is a link outside the destination (to '../../etc')"],
      ['a symlink to an absolute path', [{ path: 'passwd', type: 'SymbolicLink', linkpath: '/etc/passwd' }],
        "entry 'passwd' is a link outside the destination (to '/etc/passwd')"],
      ['a hard link outside', [{ path: 'passwd', type: 'Link', linkpath: '../../etc/passwd' }],
        "entry 'passwd' is a hard link outside the destination (to '../../etc/passwd')"],
      ['an absolute hard link', [{ path: 'passwd', type: 'Link', linkpath: '/etc/passwd' }],
        "entry 'passwd' is a hard link outside the destination (to '/etc/passwd')"],
      ['a device file', [{ path: 'null', type: 'CharacterDevice' }], "entry 'null' is a CharacterDevice"],
      // Each link looks harmless; followed, b leaves the tree.
      ['a chain of links', [{ path: 'a', type: 'SymbolicLink', linkpath: '.' }, { path: 'b', type: 'SymbolicLink', linkpath: 'a/..' }],
        "entry 'b' is a link outside the destination (to 'a/..')"],
    ];
    for (const [what, entries, message] of cases) {
      it(`refuses ${what}`, async () => {
        writeFileSync(join(work, 'evil.tar'), rawTar(entries));
        await assert.rejects(extractArchive(join(work, 'evil.tar'), join(work, 'dest')), (error: Error) => {
          assert.equal(error.name, 'UnsafeArchiveError');
          assert.ok(error.message.includes(message), error.message);
          return true;
        });
        assert.deepEqual(readdirSync(work), ['evil.tar']);
      });
    }

    it('refuses a link that leaves the destination once its top-level folder is stripped', async () => {
      writeFileSync(join(work, 'evil.tar'), rawTar([{ path: 'top/', type: 'Directory' }, { path: 'top/up', type: 'SymbolicLink', linkpath: '../top' }]));
      await assert.rejects(extractArchive(join(work, 'evil.tar'), join(work, 'dest'), { stripTopLevel: true }), {
        name: 'UnsafeArchiveError',
        message: `refusing archive ${join(work, 'evil.tar')}: entry 'top/up' is a link outside the destination (to '../top')`,
      });
      assert.deepEqual(readdirSync(work), ['evil.tar']);
    });

    it('refuses an unsafe xz archive the same way', async () => {
      const compressed = execFileSync('xz', ['-c'], { input: rawTar([{ path: 'pkg/ok', body: 'ok' }, { path: '../x', body: 'evil' }]) });
      writeFileSync(join(work, 'evil.tar.xz'), compressed);
      await assert.rejects(extractArchive(join(work, 'evil.tar.xz'), join(work, 'dest')), { name: 'UnsafeArchiveError', message: /entry '\.\.\/x' contains '\.\.'/ });
      assert.deepEqual(readdirSync(work), ['evil.tar.xz']);
    });

    it('refuses a zip holding a symlink out of the destination', async () => {
      const tree = writeTree({ 'pkg/ok': 'ok' });
      try {
        symlinkSync('../../etc', join(tree, 'pkg/etc'));
        execFileSync('zip', ['-qry', join(work, 'evil.zip'), 'pkg'], { cwd: tree });
      } finally {
        removeTree(tree);
      }
      await assert.rejects(extractArchive(join(work, 'evil.zip'), join(work, 'dest')), {
        name: 'UnsafeArchiveError',
        message: /entry 'pkg\/etc' is a link outside the destination \(to '\.\.\/\.\.\/etc'\)/,
      });
      assert.deepEqual(readdirSync(work), ['evil.zip']);
      assert.ok(!existsSync(join(work, 'dest')));
    });
  });
});
