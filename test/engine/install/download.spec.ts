import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { download, splitChecksumFragment, type DownloadRequest } from '../../../engine/install/download.js';
import type { BuildoutSettings } from '../../../engine/install/recipe.js';
import { removeTree, writeTree } from '../../helpers/files.js';

const hello = 'hello, mesh\n';
const digest = (kind: string, text: string) => createHash(kind).update(text).digest('hex');

describe('engine/install/download', () => {
  let server: Server;
  let base: string;
  /** Request paths the server saw, per test. */
  let requests: string[];
  const events = new EventEmitter();
  let work: string;
  let cache: string;
  let tmp: string;
  let savedTmpdir: string | undefined;
  let lines: string[];

  before(async () => {
    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      switch (req.url) {
        case '/files/hello.txt':
          res.end(hello);
          return;
        case '/redirect':
          res.writeHead(302, { location: '/files/hello.txt' }).end();
          return;
        case '/stall-head':
          events.emit('stalled');
          return; // never answers
        case '/stall-body':
          res.writeHead(200, { 'content-length': '1000' });
          res.write('a first chunk', () => events.emit('stalled'));
          return; // never finishes
        default:
          res.writeHead(404).end('not here');
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  beforeEach(() => {
    requests = [];
    lines = [];
    work = writeTree({ 'hello.txt': hello });
    cache = join(work, 'download-cache');
    tmp = writeTree({});
    // os.tmpdir() reads TMPDIR at each call: downloads without a cache land in this folder.
    savedTmpdir = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
  });

  afterEach(() => {
    if (savedTmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmpdir;
    removeTree(work);
    removeTree(tmp);
  });

  function settings(overrides: Partial<BuildoutSettings> = {}): BuildoutSettings {
    return {
      directory: work,
      partsDirectory: join(work, 'parts'),
      binDirectory: join(work, 'bin'),
      offline: false,
      frozen: false,
      downloadCache: cache,
      allowHosts: ['*'],
      ...overrides,
    };
  }

  function request(url: string, extra: Partial<DownloadRequest> & { overrides?: Partial<BuildoutSettings> } = {}): DownloadRequest {
    const { overrides, ...rest } = extra;
    return { url, settings: settings(overrides), log: (line) => lines.push(line), signal: new AbortController().signal, ...rest };
  }

  const cacheEntries = () => readdirSync(cache);

  describe('http', () => {
    for (const kind of ['md5', 'sha256', 'sha512'] as const) {
      it(`downloads into the cache and verifies ${kind}`, async () => {
        const url = `${base}/files/hello.txt`;
        const path = await download(request(url, { checksum: { [kind]: digest(kind, hello).toUpperCase() } }));
        assert.equal(readFileSync(path, 'utf8'), hello);
        assert.equal(dirname(path), cache);
        assert.equal(basename(path), `${digest('sha256', url)}-hello.txt`);
        assert.deepEqual(lines, [`Downloading ${url}`]);
        assert.deepEqual(cacheEntries(), [basename(path)]);
      });
    }

    it('refuses a mismatch, naming the URL and both hashes, and leaves nothing in the cache', async () => {
      const url = `${base}/files/hello.txt`;
      const wrong = 'f'.repeat(64);
      await assert.rejects(download(request(url, { checksum: { md5: digest('md5', hello), sha256: wrong } })), {
        name: 'ChecksumError',
        message: `checksum mismatch for ${url}: expected sha256 ${wrong}, got ${digest('sha256', hello)}`,
      });
      assert.deepEqual(cacheEntries(), []);
    });

    it('downloads into a temporary folder without a cache, and leaves nothing there on a mismatch', async () => {
      const url = `${base}/files/hello.txt`;
      const path = await download(request(url, { overrides: { downloadCache: undefined } }));
      assert.equal(readFileSync(path, 'utf8'), hello);
      assert.equal(basename(path), 'hello.txt');
      assert.equal(dirname(dirname(path)), tmp);
      removeTree(dirname(path));

      await assert.rejects(download(request(url, { checksum: { md5: '0'.repeat(32) }, overrides: { downloadCache: undefined } })), {
        name: 'ChecksumError',
        message: `checksum mismatch for ${url}: expected md5 ${'0'.repeat(32)}, got ${digest('md5', hello)}`,
      });
      assert.deepEqual(readdirSync(tmp), []);
    });

    it('uses a cached file without the network, with or without a checksum', async () => {
      const url = `${base}/files/hello.txt`;
      const first = await download(request(url));
      assert.equal(await download(request(url)), first);
      assert.equal(await download(request(url, { checksum: { sha512: digest('sha512', hello) } })), first);
      assert.deepEqual(requests, ['/files/hello.txt']);
      assert.deepEqual(lines, [`Downloading ${url}`, `Using cached ${url}`, `Using cached ${url}`]);
    });

    it('downloads again a cached file that fails its checksum', async () => {
      const url = `${base}/files/hello.txt`;
      const path = await download(request(url));
      writeFileSync(path, 'stale');
      assert.equal(await download(request(url, { checksum: { md5: digest('md5', hello) } })), path);
      assert.equal(readFileSync(path, 'utf8'), hello);
      assert.equal(requests.length, 2);
    });

    it('follows redirects', async () => {
      const path = await download(request(`${base}/redirect`, { checksum: { md5: digest('md5', hello) } }));
      assert.equal(readFileSync(path, 'utf8'), hello);
      assert.deepEqual(requests, ['/redirect', '/files/hello.txt']);
    });

    it('reports an HTTP error and keeps nothing', async () => {
      const url = `${base}/missing.tar.gz`;
      await assert.rejects(download(request(url)), { name: 'DownloadError', message: `Error downloading ${url}: HTTP 404 Not Found` });
      assert.deepEqual(cacheEntries(), []);
    });

    it('reports a refused connection', async () => {
      const closed = createServer();
      closed.listen(0, '127.0.0.1');
      await once(closed, 'listening');
      const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/x.tar.gz`;
      closed.close();
      await once(closed, 'close');
      await assert.rejects(download(request(url)), (error: Error) => {
        assert.equal(error.name, 'DownloadError');
        assert.match(error.message, /^Error downloading .*ECONNREFUSED/);
        return true;
      });
    });
  });

  describe('policy', () => {
    it('refuses the network in offline mode', async () => {
      const url = `${base}/files/hello.txt`;
      await assert.rejects(download(request(url, { overrides: { offline: true } })), {
        name: 'OfflineError',
        message: `Couldn't download '${url}' in offline mode.`,
      });
      await assert.rejects(download(request(url, { overrides: { offline: true, downloadCache: undefined } })), { name: 'OfflineError' });
      assert.deepEqual(requests, []);
    });

    it('uses the cache in offline mode, and refuses a cached copy that fails its checksum', async () => {
      const url = `${base}/files/hello.txt`;
      const path = await download(request(url));
      const offline = { overrides: { offline: true } };
      assert.equal(await download(request(url, { ...offline, checksum: { md5: digest('md5', hello) } })), path);
      await assert.rejects(download(request(url, { ...offline, checksum: { md5: '1'.repeat(32) } })), (error: Error) => {
        assert.equal(error.name, 'ChecksumError');
        assert.ok(error.message.startsWith(`checksum mismatch for ${url}: expected md5 ${'1'.repeat(32)}, got ${digest('md5', hello)}`));
        return true;
      });
      assert.equal(requests.length, 1);
    });

    it('refuses hosts outside allow-hosts, matched as fnmatch globs on host:port', async () => {
      const url = `${base}/files/hello.txt`;
      const host = new URL(base).host;
      await assert.rejects(download(request(url, { overrides: { allowHosts: ['example.com', '*.example.org', '127.0.0.1'] } })), {
        name: 'HostNotAllowedError',
        message: `refusing to download '${url}': host '${host}' is not in allow-hosts`,
      });
      assert.deepEqual(requests, []);
      const path = await download(request(url, { overrides: { allowHosts: ['example.com', '127.0.0.?:*'] } }));
      assert.equal(readFileSync(path, 'utf8'), hello);
    });

    it('refuses a download without a checksum when frozen', async () => {
      const url = `${base}/files/hello.txt`;
      await assert.rejects(download(request(url, { overrides: { frozen: true } })), (error: Error) => {
        assert.equal(error.name, 'FrozenError');
        assert.match(error.message, /--frozen requires md5sum, sha256 or sha512/);
        assert.ok(error.message.includes(url));
        return true;
      });
      assert.deepEqual(requests, []);
      const path = await download(request(url, { overrides: { frozen: true }, checksum: { sha256: digest('sha256', hello) } }));
      assert.equal(readFileSync(path, 'utf8'), hello);
    });
  });

  describe('timeouts and abort', () => {
    it('times out when no response comes', async () => {
      const url = `${base}/stall-head`;
      await assert.rejects(download(request(url, { timeoutMs: 50 })), {
        name: 'DownloadTimeoutError',
        message: `no response from ${url} within 50 ms`,
      });
      assert.deepEqual(cacheEntries(), []);
    });

    it('times out when the body stalls, and leaves nothing', async () => {
      const url = `${base}/stall-body`;
      await assert.rejects(download(request(url, { idleTimeoutMs: 50 })), {
        name: 'DownloadTimeoutError',
        message: `download of ${url} stalled for 50 ms`,
      });
      assert.deepEqual(cacheEntries(), []);
    });

    it('stops when its signal aborts, and leaves nothing', async () => {
      const controller = new AbortController();
      const stalled = once(events, 'stalled');
      const outcome = assert.rejects(download(request(`${base}/stall-body`, { signal: controller.signal })), { name: 'AbortError' });
      await stalled;
      controller.abort();
      await outcome;
      assert.deepEqual(cacheEntries(), []);
      await assert.rejects(download(request(`${base}/files/hello.txt`, { signal: controller.signal })), { name: 'AbortError' });
    });
  });

  describe('url#md5', () => {
    it('splits an md5 fragment, and only an md5 fragment', () => {
      const md5 = digest('md5', hello);
      assert.deepEqual(splitChecksumFragment(`http://h/a.tgz#${md5.toUpperCase()}`), { url: 'http://h/a.tgz', md5 });
      assert.deepEqual(splitChecksumFragment('http://h/a.tgz#section'), { url: 'http://h/a.tgz#section' });
      assert.deepEqual(splitChecksumFragment('http://h/a.tgz'), { url: 'http://h/a.tgz' });
    });

    it('verifies the fragment and does not send it', async () => {
      const url = `${base}/files/hello.txt`;
      const path = await download(request(`${url}#${digest('md5', hello)}`, { overrides: { frozen: true } }));
      assert.equal(readFileSync(path, 'utf8'), hello);
      assert.deepEqual(requests, ['/files/hello.txt']);
      await assert.rejects(download(request(`${url}#${'2'.repeat(32)}`)), {
        name: 'ChecksumError',
        message: new RegExp(`^checksum mismatch for ${url}: expected md5 2{32}, got ${digest('md5', hello)}`),
      });
    });
  });

  describe('local files', () => {
    it('uses a path relative to the buildout directory, or to baseDir, in place', async () => {
      assert.equal(await download(request('hello.txt', { checksum: { md5: digest('md5', hello) } })), join(work, 'hello.txt'));
      assert.equal(await download(request('../hello.txt', { baseDir: join(work, 'sub') })), join(work, 'hello.txt'));
      assert.deepEqual(lines, []);
    });

    it('uses a file: URL in place, even offline', async () => {
      const url = pathToFileURL(join(work, 'hello.txt')).href;
      const path = await download(request(url, { overrides: { offline: true }, checksum: { sha256: digest('sha256', hello) } }));
      assert.equal(path, join(work, 'hello.txt'));
    });

    it('refuses a local file that fails its checksum, or is missing', async () => {
      await assert.rejects(download(request('hello.txt', { checksum: { md5: '3'.repeat(32) } })), {
        name: 'ChecksumError',
        message: `checksum mismatch for hello.txt: expected md5 ${'3'.repeat(32)}, got ${digest('md5', hello)}`,
      });
      await assert.rejects(download(request('nowhere.tgz')), { name: 'DownloadError', message: `no such file: ${join(work, 'nowhere.tgz')} (from 'nowhere.tgz')` });
    });

    it('refuses other schemes', async () => {
      await assert.rejects(download(request('ftp://example.com/a.tgz')), { name: 'DownloadError', message: "unsupported URL scheme 'ftp:' in 'ftp://example.com/a.tgz'" });
    });
  });
});
