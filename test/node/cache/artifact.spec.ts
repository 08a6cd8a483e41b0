import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync, cpSync, existsSync, lutimesSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync,
  renameSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { Header, list, type HeaderData, type ReadEntry } from 'tar';
import { extractArtifact, packArtifact } from '../../../node/cache/artifact.js';
import { CHUNK_SIZE, hashFile } from '../../../node/cache/cid.js';
import { paddedPrefix } from '../../../node/cache/relocate.js';
import { removeTree, writeTree } from '../../helpers/files.js';

const PROGRAM = `#include <stdio.h>
int main(void) {
  char line[256];
  FILE *file = fopen(DATA, "r");
  printf("data=%s\\nflags=%s\\n", DATA, FLAGS);
  if (!file) { perror(DATA); return 1; }
  while (fgets(line, sizeof line, file)) fputs(line, stdout);
  return fclose(file);
}
`;

/** Writes `content` at `path` (relative to `root`), creating its folder. */
function put(root: string, path: string, content: string | Buffer, mode = 0o644): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), content, { mode });
}

interface RawEntry {
  path: string;
  type?: HeaderData['type'];
  linkpath?: string;
  body?: string;
}

/** A tar.zst holding exactly these headers, which no well-behaved packer would write. */
function rawArtifact(file: string, entries: readonly RawEntry[]): void {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '');
    const block = Buffer.alloc(512);
    new Header({
      path: entry.path, type: entry.type ?? 'File', linkpath: entry.linkpath ?? '', size: body.length,
      mode: 0o644, uid: 0, gid: 0, mtime: new Date(0),
    }).encode(block);
    blocks.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  writeFileSync(file, zstdCompressSync(Buffer.concat(blocks)));
}

async function entriesOf(file: string): Promise<ReadEntry[]> {
  const entries: ReadEntry[] = [];
  await list({ file, onReadEntry: (entry) => entries.push(entry) });
  return entries;
}

describe('node/cache/artifact', () => {
  let work: string;

  beforeEach(() => {
    work = writeTree({});
  });

  afterEach(() => {
    removeTree(work);
  });

  describe('a C program, a script, a config file and a link built under a padded prefix', () => {
    let build: string;
    let prefix: string;
    let artifact: string;

    before(async () => {
      build = writeTree({ 'src/greet.c': PROGRAM });
      prefix = paddedPrefix(build);
      put(prefix, 'share/greeting', 'hello from the mesh\n');
      put(prefix, 'share/data.bin', randomBytes(100_000));
      put(prefix, 'etc/app.conf', `root = ${prefix}\nlib = ${prefix}/lib\n# logs under ${prefix}/var/log\n`, 0o640);
      put(prefix, 'bin/hello', `#!${prefix}/bin/sh\ncat "${prefix}/share/greeting"\n`, 0o755);
      copyFileSync('/bin/sh', join(prefix, 'bin/sh'));
      symlinkSync(`${prefix}/share/greeting`, join(prefix, 'greeting.link'));
      execFileSync('cc', [
        `-DDATA="${prefix}/share/greeting"`, `-DFLAGS="-L${prefix}/lib -I${prefix}/include"`, `-Wl,-rpath,${prefix}/lib`,
        '-o', join(prefix, 'bin/greet'), join(build, 'src/greet.c'),
      ]);
      assert.equal(execFileSync(join(prefix, 'bin/hello'), { encoding: 'utf8' }), 'hello from the mesh\n');
      artifact = (await packArtifact(prefix, join(build, 'artifact.tar.zst'))).file;
      // The old prefix is gone: what runs from the new place cannot be reading it.
      renameSync(prefix, join(build, 'built'));
    });

    after(() => {
      removeTree(build);
    });

    it('runs from a shorter prefix elsewhere, with every path rewritten', async () => {
      const destination = join(work, 'software/0123abcd');
      await extractArtifact(artifact, destination, { fromPrefix: prefix, toPrefix: destination });
      const built = join(build, 'built');

      const output = execFileSync(join(destination, 'bin/greet'), { encoding: 'utf8' });
      assert.equal(output, `data=${destination}/share/greeting\nflags=-L${destination}/lib -I${destination}/include\nhello from the mesh\n`);
      const binary = readFileSync(join(destination, 'bin/greet'));
      assert.equal(binary.length, statSync(join(built, 'bin/greet')).size);
      assert.equal(binary.indexOf(prefix), -1);
      assert.match(execFileSync('readelf', ['-d', join(destination, 'bin/greet')], { encoding: 'utf8' }), new RegExp(`\\[${destination}/lib\\]`));

      assert.equal(execFileSync(join(destination, 'bin/hello'), { encoding: 'utf8' }), 'hello from the mesh\n');
      const config = `root = ${destination}\nlib = ${destination}/lib\n# logs under ${destination}/var/log\n`;
      assert.equal(readFileSync(join(destination, 'etc/app.conf'), 'utf8'), config);
      assert.equal(isAbsolute(readlinkSync(join(destination, 'greeting.link'))), false);
      assert.equal(realpathSync(join(destination, 'greeting.link')), join(destination, 'share/greeting'));

      for (const same of ['share/greeting', 'share/data.bin', 'bin/sh']) {
        assert.deepEqual(readFileSync(join(destination, same)), readFileSync(join(built, same)), same);
      }
      for (const [path, mode] of [['bin/greet', 0o755], ['bin/hello', 0o755], ['etc/app.conf', 0o640]] as const) {
        assert.equal(statSync(join(destination, path)).mode & 0o777, mode, path);
      }
      assert.deepEqual(readdirSync(join(work, 'software')), ['0123abcd']);
    });

    it('refuses a longer prefix for the binary, and leaves no destination', async () => {
      const destination = join(work, 'software/longer');
      await assert.rejects(
        extractArtifact(artifact, destination, { fromPrefix: prefix, toPrefix: `${prefix}/longer` }),
        (error: Error) => error.name === 'RelocationError' && error.message.includes('bin/greet'),
      );
      assert.deepEqual(readdirSync(join(work, 'software')), []);
    });
  });

  it('relocates a tree of text files to a longer prefix', async () => {
    const prefix = paddedPrefix(join(work, 'build'));
    put(prefix, 'etc/a.cfg', `home = ${prefix}/home\n`);
    put(prefix, 'bin/run', `#!/bin/sh\nexec ${prefix}/bin/real "$@"\n`, 0o755);
    const { file } = await packArtifact(prefix, join(work, 'text.tar.zst'));
    const destination = join(work, 'software/text');
    const longer = `${destination}/${'x'.repeat(200)}`;

    await extractArtifact(file, destination, { fromPrefix: prefix, toPrefix: longer });
    assert.equal(readFileSync(join(destination, 'etc/a.cfg'), 'utf8'), `home = ${longer}/home\n`);
    assert.equal(readFileSync(join(destination, 'bin/run'), 'utf8'), `#!/bin/sh\nexec ${longer}/bin/real "$@"\n`);
    assert.equal(statSync(join(destination, 'bin/run')).mode & 0o777, 0o755);
  });

  it('packs deterministically: same tree, same CID, whatever the times', async () => {
    const tree = join(work, 'tree');
    put(tree, 'bin/tool', '#!/bin/sh\necho tool\n', 0o755);
    put(tree, 'etc/private.cfg', 'secret = 1\n', 0o640);
    put(tree, 'share/big.bin', randomBytes(2 * CHUNK_SIZE + 12345));
    put(tree, `share/${'long-name-'.repeat(15)}.txt`, 'a name longer than a ustar header holds\n');
    mkdirSync(join(tree, 'var/empty'), { recursive: true });
    symlinkSync('../bin/tool', join(tree, 'share/tool'));
    symlinkSync(join(tree, 'etc/private.cfg'), join(tree, 'private.cfg'));

    const first = await packArtifact(tree, join(work, 'out/first.tar.zst'));
    const second = await packArtifact(tree, join(work, 'out/second.tar.zst'));
    const copy = join(work, 'copy');
    cpSync(tree, copy, { recursive: true, verbatimSymlinks: true });
    rmSync(join(copy, 'private.cfg'));
    symlinkSync(join(copy, 'etc/private.cfg'), join(copy, 'private.cfg'));
    for (const entry of readdirSync(copy, { recursive: true, withFileTypes: true })) {
      const time = 1_000_000 + Math.floor(Math.random() * 1_000_000);
      lutimesSync(join(entry.parentPath, entry.name), time, time);
    }
    const third = await packArtifact(copy, join(work, 'out/third.tar.zst'));

    assert.equal(second.cid, first.cid);
    assert.equal(third.cid, first.cid);
    assert.deepEqual(readdirSync(join(work, 'out')).sort(), ['first.tar.zst', 'second.tar.zst', 'third.tar.zst']);
    const hashed = await hashFile(first.file);
    assert.deepEqual({ cid: first.cid, size: first.size, chunks: first.chunks }, hashed);
    assert.equal(first.size, statSync(first.file).size);
    assert.equal(first.chunks.length, Math.ceil(first.size / CHUNK_SIZE));
    assert.ok(first.chunks.length >= 2);

    const entries = await entriesOf(first.file);
    const paths = entries.map((entry) => entry.path);
    assert.deepEqual(paths, [...paths].sort());
    assert.ok(paths.includes(`share/${'long-name-'.repeat(15)}.txt`));
    for (const entry of entries) {
      assert.equal(entry.mtime?.getTime(), 0, entry.path);
      assert.equal(entry.uid, 0);
      assert.equal(entry.gid, 0);
      assert.equal(entry.uname ?? '', '');
    }
    const byPath = new Map(entries.map((entry) => [entry.path, entry]));
    assert.equal(byPath.get('bin/tool')?.mode, 0o755);
    assert.equal(byPath.get('etc/private.cfg')?.mode, 0o640);
    assert.equal(byPath.get('private.cfg')?.linkpath, 'etc/private.cfg');
    assert.equal(byPath.get('share/tool')?.linkpath, '../bin/tool');
  });

  it('refuses to pack a link leading out of the tree, and writes nothing', async () => {
    const tree = join(work, 'tree');
    put(tree, 'file', 'x');
    symlinkSync('/usr/lib/libz.so.1', join(tree, 'libz.so.1'));
    await assert.rejects(packArtifact(tree, join(work, 'out/a.tar.zst')), { name: 'PackError' });
    assert.deepEqual(readdirSync(join(work, 'out')), []);
  });

  const unsafe: Record<string, RawEntry[]> = {
    'a parent path': [{ path: '../evil', body: 'x' }],
    'an absolute path': [{ path: '/ABSOLUTE/evil', body: 'x' }],
    'a file written through a link out of the tree': [
      { path: 'link', type: 'SymbolicLink', linkpath: '../../outside' },
      { path: 'link/file', body: 'x' },
    ],
  };
  for (const [what, entries] of Object.entries(unsafe)) {
    it(`refuses an artifact with ${what}, and writes nothing`, async () => {
      const absolute = join(work, 'absolute');
      const file = join(work, 'evil.tar.zst');
      rawArtifact(file, entries.map((entry) => ({ ...entry, path: entry.path.replace('/ABSOLUTE', absolute) })));
      const destination = join(work, 'software/evil');

      await assert.rejects(
        extractArtifact(file, destination, { fromPrefix: '/old', toPrefix: destination }),
        (error: Error) => error.name === 'UnsafeArchiveError',
      );
      assert.deepEqual(readdirSync(join(work, 'software')), []);
      assert.deepEqual(readdirSync(work).sort(), ['evil.tar.zst', 'software']);
      assert.equal(existsSync(absolute), false);
    });
  }
});
