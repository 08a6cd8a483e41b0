import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { c as tarCreate } from 'tar';
import { install } from '../../../engine/install/installer.js';
import { removeTree, writeTree } from '../../helpers/files.js';

const md5 = (data: Buffer | string) => createHash('md5').update(data).digest('hex');

describe('engine/recipes: slapos.recipe.build:download and :download-unpacked', () => {
  let files: Record<string, Buffer>;
  let server: Server;
  let base: string;
  let dir: string;
  let requests: string[];

  before(async () => {
    const src = writeTree({ 'pkg-2.0/README': 'read me\n', 'pkg-2.0/bin/tool': '#!/bin/sh\n', 'flat/a': 'a\n', 'flat/b': 'b\n' });
    await tarCreate({ gzip: true, file: join(src, 'pkg.tar.gz'), cwd: src, portable: true }, ['pkg-2.0']);
    await tarCreate({ gzip: true, file: join(src, 'flat.tar.gz'), cwd: join(src, 'flat'), portable: true }, ['a', 'b']);
    files = {
      '/file.txt': Buffer.from('some content\n'),
      '/pkg.tar.gz': readFileSync(join(src, 'pkg.tar.gz')),
      '/flat.tar.gz': readFileSync(join(src, 'flat.tar.gz')),
    };
    removeTree(src);
    server = createServer((request, response) => {
      requests.push(request.url ?? '');
      const body = files[request.url ?? ''];
      response.writeHead(body ? 200 : 404).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    dir = writeTree({});
    requests = [];
  });
  afterEach(() => removeTree(dir));

  async function build(...sections: string[]): Promise<void> {
    const names = sections.map((s) => /^\[([^\]]+)\]/.exec(s)![1]);
    writeFileSync(join(dir, 'buildout.cfg'), `[buildout]\nparts = ${names.join(' ')}\n${sections.join('\n')}\n`);
    await install({ configFile: join(dir, 'buildout.cfg') });
  }

  it('downloads a file into the part, named after the section, and sets target', async () => {
    await build(`[file]\nrecipe = slapos.recipe.build:download\nurl = ${base}/file.txt#${md5(files['/file.txt']!)}\n`,
      '[user]\nrecipe = slapos.recipe.build:download\nurl = ${file:target}\nfilename = copy.txt\nmode = 0600\n');
    assert.equal(readFileSync(join(dir, 'parts/file/file'), 'utf8'), 'some content\n');
    assert.equal(readFileSync(join(dir, 'parts/user/copy.txt'), 'utf8'), 'some content\n');
    assert.equal(statSync(join(dir, 'parts/user/copy.txt')).mode & 0o777, 0o600);
  });

  it('downloads to an explicit destination', async () => {
    await build(`[file]\nrecipe = slapos.recipe.build:download\nurl = ${base}/file.txt\nmd5sum = ${md5(files['/file.txt']!)}\ndestination = \${buildout:directory}/out/here.txt\n`);
    assert.equal(readFileSync(join(dir, 'out/here.txt'), 'utf8'), 'some content\n');
    assert.ok(!existsSync(join(dir, 'parts/file')));
  });

  it('a checksum mismatch fails and leaves nothing', async () => {
    await assert.rejects(build(`[file]\nrecipe = slapos.recipe.build:download\nurl = ${base}/file.txt\nmd5sum = ${'0'.repeat(32)}\n`),
      new RegExp(`checksum mismatch for ${base}/file.txt: expected md5 0{32}, got ${md5(files['/file.txt']!)}`));
    assert.deepEqual(readdirSync(join(dir, 'parts')), []);
  });

  it('unpacks an archive, stripping its single top-level folder', async () => {
    await build(`[pkg]\nrecipe = slapos.recipe.build:download-unpacked\nurl = ${base}/pkg.tar.gz\nmd5sum = ${md5(files['/pkg.tar.gz']!)}\n`);
    assert.deepEqual(readdirSync(join(dir, 'parts/pkg')).sort(), ['README', 'bin']);
    assert.deepEqual(requests, ['/pkg.tar.gz']);
  });

  it('keeps the top-level folder with strip-top-level-dir = false, and unpacks to a destination', async () => {
    await build(`[pkg]\nrecipe = slapos.recipe.build:download-unpacked\nurl = ${base}/pkg.tar.gz\nstrip-top-level-dir = false\n`,
      `[flat]\nrecipe = slapos.recipe.build:download-unpacked\nurl = ${base}/flat.tar.gz\ndestination = \${buildout:directory}/flat\n`);
    assert.deepEqual(readdirSync(join(dir, 'parts/pkg')), ['pkg-2.0']);
    assert.deepEqual(readdirSync(join(dir, 'flat')).sort(), ['a', 'b']);
  });

  it('a missing file fails naming the URL and leaves nothing', async () => {
    await assert.rejects(build(`[pkg]\nrecipe = slapos.recipe.build:download-unpacked\nurl = ${base}/nothing.tar.gz\n`), /nothing\.tar\.gz: HTTP 404/);
    assert.deepEqual(readdirSync(join(dir, 'parts')), []);
  });
});
