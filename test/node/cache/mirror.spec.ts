// Releases given by URL: served by a real HTTP server on 127.0.0.1, mirrored, then bundled.
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { bundleRelease } from '../../../node/cache/bundle.js';
import { mirrorRelease } from '../../../node/cache/mirror.js';
import { removeTree, writeTree } from '../../helpers/files.js';

const RELEASE = {
  'shop/common.cfg': '[buildout]\nparts = page\n\n[settings]\ngreeting = hello\n',
  'shop/software/web/software.cfg': [
    '[buildout]', 'extends = ../../common.cfg', '',
    '[page]', 'recipe = slapos.recipe.template',
    'url = ${:_profile_base_location_}/page.in', 'output = ${buildout:directory}/page.html', '',
    '[patches]', 'files = ${:_profile_base_location_}/fix-one.patch', '',
  ].join('\n'),
  'shop/software/web/page.in': '<p>hello</p>\n',
  'shop/software/web/fix-one.patch': '--- a\n+++ b\n',
  'shop/software/web/unused.txt': 'named by nothing: not part of the release\n',
};

/** Serves the files of `root` (404 for the rest); requests are recorded. */
async function serve(root: string, requests: string[]): Promise<{ server: Server; url: string }> {
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url!, 'http://x').pathname);
    requests.push(path);
    readFile(join(root, normalize(path))).then((bytes) => response.end(bytes), () => {
      response.statusCode = 404;
      response.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('node/cache/mirror: releases by URL', () => {
  let root: string;
  let server: Server;
  let base: string;
  const requests: string[] = [];
  const dirs: string[] = [];
  const tmp = () => {
    const dir = writeTree({});
    dirs.push(dir);
    return dir;
  };

  before(async () => {
    root = writeTree(RELEASE);
    ({ server, url: base } = await serve(root, requests));
  });
  after(() => {
    server.close();
    removeTree(root);
    dirs.forEach(removeTree);
  });

  it('downloads the profiles and the files they name into the same layout, and bundles to the CID of a local copy', async () => {
    const profile = await mirrorRelease(`${base}/shop/software/web/software.cfg`, tmp());
    assert.match(profile, /\/shop\/software\/web\/software\.cfg$/);
    const fromUrl = await bundleRelease(profile, tmp());
    const fromDisk = await bundleRelease(join(root, 'shop/software/web/software.cfg'), tmp());
    assert.equal(fromUrl.cid, fromDisk.cid);
    assert.equal(fromUrl.name, 'web');
    assert.deepEqual(fromUrl.files, ['common.cfg', 'software/web/fix-one.patch', 'software/web/page.in', 'software/web/software.cfg']);
    assert.ok(!requests.includes('/shop/software/web/unused.txt'));
  });

  it('fails with the section and option naming a file that cannot be fetched, and refuses other schemes', async () => {
    const missing = writeTree({ 'r/software.cfg': '[buildout]\nparts =\n\n[x]\nfile = ${:_profile_base_location_}/gone.txt\n' });
    dirs.push(missing);
    const { server: other, url } = await serve(missing, []);
    try {
      await assert.rejects(mirrorRelease(`${url}/r/software.cfg`, tmp()), { name: 'MirrorError', message: /gone\.txt \(\[x\] file\): HTTP 404/ });
    } finally {
      other.close();
    }
    await assert.rejects(mirrorRelease('ftp://127.0.0.1/software.cfg', tmp()), { name: 'MirrorError' });
  });
});
