// Release bundles: what goes in, and the same bytes (the same CID) for the same tree anywhere.
import { strict as assert } from 'node:assert';
import {
  appendFileSync, chmodSync, cpSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync,
  symlinkSync, utimesSync, writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { create, Parser, type ReadEntry } from 'tar';
import { resolveConfiguration } from '../../../engine/config/resolve.js';
import { bundleRelease, unbundle, type ReleaseBundle } from '../../../node/cache/bundle.js';
import { hashFile } from '../../../node/cache/cid.js';
import { removeTree, writeTree } from '../../helpers/files.js';

const HELLO = fileURLToPath(new URL('../../../../examples/hello', import.meta.url));

/** Every regular file under `root` (posix, sorted), and every link when `links`; links are not followed. */
function walk(root: string, links = false, folder = ''): string[] {
  return readdirSync(join(root, folder), { withFileTypes: true })
    .flatMap((entry) => {
      const path = folder ? `${folder}/${entry.name}` : entry.name;
      if (entry.isDirectory()) return walk(root, links, path);
      return entry.isFile() || (links && entry.isSymbolicLink()) ? [path] : [];
    })
    .sort();
}

/** Every folder and file of `root`, including itself, deepest first. */
function everything(root: string): string[] {
  const paths = readdirSync(root, { recursive: true }).map((name) => join(root, String(name)));
  return [root, ...paths].sort().reverse();
}

/** The headers of a bundle, in order, read back by node-tar. */
function headers(file: string): ReadEntry[] {
  const entries: ReadEntry[] = [];
  const parser = new Parser({ onReadEntry: (entry) => void (entries.push(entry), entry.resume()) });
  parser.end(gunzipSync(readFileSync(file)));
  return entries;
}

describe('node/cache/bundle', () => {
  let work: string;
  let out: string;
  /** A copy of examples/hello at `work/<parent>/<name>`. */
  const copyHello = (parent: string, name = 'hello'): string => {
    const release = join(work, parent, name);
    cpSync(HELLO, release, { recursive: true });
    return release;
  };

  beforeEach(() => {
    work = writeTree({});
    out = join(work, 'out');
  });
  afterEach(() => removeTree(work));

  it('bundles examples/hello: its profiles, instance.cfg.in and src/, and unbundles to the same files', async () => {
    const release = copyHello('a');
    const bundle = await bundleRelease(release, out);
    const src = readdirSync(join(HELLO, 'src')).map((name) => `src/${name}`);
    assert.deepEqual(bundle.files, ['component/hello-server/buildout.cfg', 'instance.cfg.in', 'software.cfg', 'stack/base.cfg', ...src].sort());
    assert.equal(bundle.profile, 'software.cfg');
    assert.equal(bundle.name, 'hello');
    assert.equal(bundle.file, join(out, `${bundle.cid}.tar.gz`));
    assert.deepEqual(await hashFile(bundle.file).then(({ cid, size }) => ({ cid, size })), { cid: bundle.cid, size: bundle.size });
    assert.deepEqual(readdirSync(out), [basename(bundle.file)]);

    const destination = join(work, 'unbundled');
    assert.equal(await unbundle(bundle.file, destination), join(destination, 'software.cfg'));
    assert.deepEqual(walk(destination), bundle.files);
    for (const file of bundle.files) assert.deepEqual(readFileSync(join(destination, file)), readFileSync(join(release, file)), file);
    assert.ok(statSync(join(destination, 'src/configure')).mode & 0o100);
    assert.equal(statSync(join(destination, 'src/README')).mode & 0o111, 0);
  });

  it('writes sorted entries, folders first, with zero times and owners, normalized modes, and a gzip header without time or OS', async () => {
    const release = copyHello('a');
    chmodSync(join(release, 'src/README'), 0o600);
    const bundle = await bundleRelease(release, out);
    const entries = headers(bundle.file);
    const paths = entries.map((entry) => entry.path);
    assert.deepEqual(paths, [...paths].sort());
    for (const [i, entry] of entries.entries()) {
      const parent = dirname(entry.path.replace(/\/$/, ''));
      if (parent !== '.') assert.ok(paths.slice(0, i).includes(`${parent}/`), `${entry.path} before its folder`);
      assert.equal(entry.mtime?.getTime(), 0);
      assert.equal(entry.uid ?? 0, 0);
      assert.equal(entry.gid ?? 0, 0);
      assert.equal(entry.uname ?? '', '');
      assert.equal(entry.gname ?? '', '');
      assert.equal(entry.header.atime, undefined);
      assert.equal(entry.header.ctime, undefined);
      assert.equal(entry.extended, undefined);
      const mode = entry.type === 'Directory' || ['src/configure', 'src/check.sh'].includes(entry.path) ? 0o755 : 0o644;
      assert.equal(entry.mode, mode, entry.path);
    }
    assert.ok(paths.includes('component/'));
    assert.equal(entries[0]?.globalExtended?.comment, 'slapmesh-profile=software.cfg');
    const gzip = readFileSync(bundle.file);
    assert.deepEqual([...gzip.subarray(4, 8)], [0, 0, 0, 0]);
    assert.equal(gzip[9], 3);
  });

  it('gives the same CID for the same tree in other folders, with other times and modes; one byte changes it', async () => {
    const first = copyHello('a', 'hello');
    const second = copyHello('b', 'elsewhere');
    // The same file under a second name: a hard link in one copy, a copy in the other.
    linkSync(join(first, 'src/README'), join(first, 'src/README.again'));
    cpSync(join(second, 'src/README'), join(second, 'src/README.again'));
    for (const path of everything(first)) {
      const folder = statSync(path).isDirectory();
      chmodSync(path, folder ? 0o700 : path.endsWith('configure') ? 0o700 : 0o640);
      utimesSync(path, new Date('2001-02-03'), new Date('2001-02-03'));
    }
    for (const path of everything(second)) {
      const folder = statSync(path).isDirectory();
      chmodSync(path, folder ? 0o775 : path.endsWith('configure') ? 0o775 : 0o644);
      utimesSync(path, new Date(), new Date());
    }
    const a = await bundleRelease(first, join(work, 'out-a'));
    const b = await bundleRelease(second, join(work, 'out-b'));
    assert.equal(a.cid, b.cid);
    assert.deepEqual(readFileSync(a.file), readFileSync(b.file));
    assert.equal(b.name, 'elsewhere');
    assert.ok(b.files.includes('src/README.again'));

    appendFileSync(join(second, 'src/README'), ' ');
    assert.notEqual((await bundleRelease(second, join(work, 'out-b'))).cid, a.cid);
  });

  it('leaves build outputs out, even from a folder it includes whole', async () => {
    const release = copyHello('a');
    const profile = join(release, 'software.cfg');
    // The whole release folder, and another section naming instance.cfg, the output of [instance-profile].
    const text = readFileSync(profile, 'utf8').replace('parts =', 'bundle-include = .\nparts =');
    writeFileSync(profile, `${text}\n[check]\nprofile = \${instance-profile:output}\n`);
    const bundlesInside = join(release, 'bundles');
    const before = await bundleRelease(release, bundlesInside);

    const outputs = {
      'parts/x/file': 'built', 'bin/y': '#!/bin/sh\n', 'eggs/e/x.py': '', 'develop-eggs/d.egg-link': '', '.installed.cfg': '[buildout]\n',
      'instance.cfg': '[buildout]\n', 'jinja2-template-base.cfg': '', 'src/config.log': 'log', 'build.log': 'log', '.git/HEAD': 'ref',
    };
    for (const [path, content] of Object.entries(outputs)) {
      mkdirSync(dirname(join(release, path)), { recursive: true });
      writeFileSync(join(release, path), content);
    }
    const after = await bundleRelease(release, bundlesInside);
    assert.equal(after.cid, before.cid);
    assert.deepEqual(after.files, before.files);
    assert.ok(!after.files.some((file) => file.startsWith('bundles/')));
    assert.ok(after.files.includes('src/.gitignore'));
  });

  it('adds what [buildout] bundle-include lists, and nothing under the profile folder that no option names', async () => {
    const release = writeTree({
      'software.cfg': '[buildout]\nparts =\nbundle-include =\n  notes/extra.txt\n  tools\n',
      'notes/extra.txt': 'extra', 'notes/other.txt': 'other', 'tools/a.sh': 'a', 'tools/sub/b': 'b', 'unnamed.txt': 'x',
    });
    try {
      // A name too long for a ustar header: a pax header holds it, with nothing but the path and size.
      const long = `tools/${'d'.repeat(120)}/${'f'.repeat(150)}`;
      mkdirSync(dirname(join(release, long)));
      writeFileSync(join(release, long), 'long');
      const bundle = await bundleRelease(join(release, 'software.cfg'), out);
      assert.deepEqual(bundle.files, ['notes/extra.txt', 'software.cfg', 'tools/a.sh', long, 'tools/sub/b'].sort());
      const extended = headers(bundle.file).find((entry) => entry.path === long)?.extended;
      const fields = Object.entries(extended ?? {}).filter(([key, value]) => key !== 'global' && value !== undefined);
      assert.deepEqual(fields, [['path', long], ['size', 4]]);
      const destination = join(work, 'unbundled');
      await unbundle(bundle.file, destination);
      assert.equal(readFileSync(join(destination, long), 'utf8'), 'long');

      writeFileSync(join(release, 'software.cfg'), '[buildout]\nparts =\nbundle-include = missing.txt\n');
      await assert.rejects(bundleRelease(release, out), (error: Error) => error.name === 'BundleError' && error.message.includes(join(release, 'missing.txt')));
    } finally {
      removeTree(release);
    }
  });

  it('bundles a release nested in a repository from the common folder of what it needs; URL extends stay URLs', async () => {
    const repository = join(work, 'repo');
    mkdirSync(repository);
    writeFileSync(join(work, 'remote.cfg'), '[remote]\nx = 1\n');
    const tree = writeTree({
      'software/foo/software.cfg': [
        '[buildout]', `extends = ../../stack/base.cfg ../../component/bar/buildout.cfg file://${join(work, 'remote.cfg')}`, 'parts =',
        '[foo]', 'missing = ${:_profile_base_location_}/nothing-here', 'outside = /etc/hostname',
        // Under no profile's folder: left out.
        'unrelated = ${:_profile_base_location_}/../../unrelated/file', '',
      ].join('\n'),
      'stack/base.cfg': '[buildout]\nparts =\n',
      'component/bar/buildout.cfg': [
        '[bar]', 'patch = ${:_profile_base_location_}/patch.diff',
        'configure-options = --with-data=${:_profile_base_location_}/data CFLAGS=-O2', '',
      ].join('\n'),
      'component/bar/patch.diff': 'diff', 'component/bar/data/x': 'x', 'component/bar/unnamed': 'u', 'unrelated/file': 'u',
    });
    cpSync(tree, repository, { recursive: true });
    removeTree(tree);

    const bundle = await bundleRelease(join(repository, 'software/foo'), out);
    assert.equal(bundle.profile, 'software/foo/software.cfg');
    assert.equal(bundle.name, 'foo');
    assert.deepEqual(bundle.files, [
      'component/bar/buildout.cfg', 'component/bar/data/x', 'component/bar/patch.diff', 'software/foo/software.cfg', 'stack/base.cfg',
    ]);

    const profile = await unbundle(bundle.file, join(work, 'unbundled'));
    assert.equal(profile, join(work, 'unbundled/software/foo/software.cfg'));
    const { sections } = await resolveConfiguration({ configFile: profile });
    assert.ok(existsSync(sections['bar']!['patch']!));
    assert.equal(sections['remote']?.['x'], '1');
  });

  it('keeps links that stay inside the bundle and refuses those that leave it', async () => {
    const release = copyHello('a');
    symlinkSync('README', join(release, 'src/README.link'));
    symlinkSync('../stack', join(release, 'src/stack'));
    const bundle: ReleaseBundle = await bundleRelease(release, out);
    assert.ok(!bundle.files.includes('src/README.link'));
    const destination = join(work, 'unbundled');
    await unbundle(bundle.file, destination);
    assert.equal(readlinkSync(join(destination, 'src/README.link')), 'README');
    assert.equal(readlinkSync(join(destination, 'src/stack')), '../stack');
    assert.deepEqual(walk(destination, true), [...bundle.files, 'src/README.link', 'src/stack'].sort());

    for (const target of ['../../outside.txt', '/etc/hostname']) {
      const link = join(release, 'src/escape');
      symlinkSync(target, link);
      await assert.rejects(bundleRelease(release, out), (error: Error) => error.name === 'BundleError' && error.message.includes(link));
      removeTree(link);
    }
    // Each link looks harmless, but together they leave the bundle.
    symlinkSync('.', join(release, 'src/here'));
    symlinkSync('here/../..', join(release, 'src/up'));
    await assert.rejects(bundleRelease(release, out), (error: Error) => error.name === 'BundleError' && error.message.includes(join(release, 'src/up')));
  });

  it('fails with the engine error, at FILE:LINE, for a missing extended file', async () => {
    const release = join(work, 'release');
    mkdirSync(release);
    writeFileSync(join(release, 'software.cfg'), '[buildout]\nparts =\nextends = missing.cfg\n');
    await assert.rejects(bundleRelease(release, out), (error: Error) =>
      error.name === 'ConfigError' && error.message.includes(`${join(release, 'software.cfg')}:3: cannot read extended file`));
  });

  it('refuses a folder without software.cfg, and an archive that is not a bundle', async () => {
    mkdirSync(join(work, 'empty'));
    await assert.rejects(bundleRelease(join(work, 'empty'), out), { name: 'BundleError' });
    await assert.rejects(bundleRelease(join(work, 'absent'), out), { name: 'BundleError' });

    const release = copyHello('a');
    await create({ file: join(work, 'plain.tar.gz'), cwd: release, gzip: true }, ['software.cfg']);
    await assert.rejects(unbundle(join(work, 'plain.tar.gz'), join(work, 'x')), { name: 'BundleError' });
    assert.ok(!existsSync(join(work, 'x')));
  });
});
