import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Assignment } from '../../../engine/config/configuration.js';
import type { ArtifactCache, ArtifactRequest } from '../../../engine/install/artifact-cache.js';
import { install, type InstallReport } from '../../../engine/install/installer.js';
import { readInstalled } from '../../../engine/install/installed.js';
import { SHARED_MARKER } from '../../../engine/install/shared.js';
import { removeTree, writeTree } from '../../helpers/files.js';

/**
 * Two C projects built with cmmi: libgreet (a static library) and hello, linked against it. Each
 * pre-configure step notes in the buildout directory that it ran, so a build that did not happen shows.
 * Installed text files hold the paths they were built under: a fetched copy must have them rewritten.
 */
const RELEASE: Record<string, string> = {
  'buildout.cfg': [
    '[buildout]',
    'parts = hello',
    '',
    '[greet]',
    'recipe = slapos.recipe.cmmi',
    'shared = true',
    'path = ${:_profile_base_location_}/greet',
    'configure-options = --greeting=Hello',
    'pre-configure = echo greet >> ${buildout:directory}/compiled.txt',
    '',
    '[hello]',
    'recipe = slapos.recipe.cmmi',
    'shared = true',
    'path = ${:_profile_base_location_}/hello',
    'configure-options = --with-greet=${greet:location}',
    'pre-configure = echo hello >> ${buildout:directory}/compiled.txt',
    '',
  ].join('\n'),
  'greet/configure': [
    '#!/bin/sh',
    'prefix=/usr/local; greeting=Hi',
    'for arg; do',
    '  case "$arg" in',
    '    --prefix=*) prefix="${arg#--prefix=}" ;;',
    '    --greeting=*) greeting="${arg#--greeting=}" ;;',
    '    *) echo "configure: unknown option $arg" >&2; exit 1 ;;',
    '  esac',
    'done',
    'printf "prefix = %s\\nGREETING = %s\\n" "$prefix" "$greeting" > Makefile',
    'cat Makefile.in >> Makefile',
    '',
  ].join('\n'),
  'greet/Makefile.in': [
    'all: libgreet.a',
    'libgreet.a: greet.c greet.h',
    '\tcc -DGREETING=\'"$(GREETING)"\' -c greet.c -o greet.o',
    '\tar rcs libgreet.a greet.o',
    'install: all',
    '\tmkdir -p $(prefix)/lib $(prefix)/include $(prefix)/share',
    '\tcp libgreet.a $(prefix)/lib/libgreet.a',
    '\tcp greet.h $(prefix)/include/greet.h',
    '\techo "$(prefix)" > $(prefix)/share/greet-prefix.txt',
    '',
  ].join('\n'),
  'greet/greet.h': 'const char *greeting(void);\n',
  'greet/greet.c': '#include "greet.h"\nconst char *greeting(void) { return GREETING; }\n',
  'hello/configure': [
    '#!/bin/sh',
    'prefix=/usr/local; greet=',
    'for arg; do',
    '  case "$arg" in',
    '    --prefix=*) prefix="${arg#--prefix=}" ;;',
    '    --with-greet=*) greet="${arg#--with-greet=}" ;;',
    '    *) echo "configure: unknown option $arg" >&2; exit 1 ;;',
    '  esac',
    'done',
    'printf "prefix = %s\\nGREET = %s\\n" "$prefix" "$greet" > Makefile',
    'cat Makefile.in >> Makefile',
    '',
  ].join('\n'),
  'hello/Makefile.in': [
    'all: hello',
    'hello: hello.c',
    '\tcc -I$(GREET)/include -o hello hello.c $(GREET)/lib/libgreet.a',
    'install: all',
    '\tmkdir -p $(prefix)/bin',
    '\tcp hello $(prefix)/bin/hello',
    '\tprintf \'#!/bin/sh\\nexec %s/bin/hello\\n\' "$(prefix)" > $(prefix)/bin/run-hello',
    '\tchmod 755 $(prefix)/bin/run-hello',
    '\techo "$(GREET)" > $(prefix)/greet-location.txt',
    '',
  ].join('\n'),
  'hello/hello.c': '#include <stdio.h>\n#include "greet.h"\nint main(void) { printf("%s from hello\\n", greeting()); return 0; }\n',
};

/** Cheap parts for signatures: shared downloads of local files, one depending on another, one on a part that is not shared. */
const DOWNLOADS: Record<string, string> = {
  'buildout.cfg': [
    '[buildout]',
    'parts = b d',
    '[a]',
    'recipe = slapos.recipe.build:download',
    'shared = true',
    'url = ${:_profile_base_location_}/a.txt',
    '[b]',
    'recipe = slapos.recipe.build:download',
    'shared = true',
    'url = ${:_profile_base_location_}/b.txt',
    'after = ${a:location}',
    '[c]',
    'recipe = slapos.recipe.build:download',
    'url = ${:_profile_base_location_}/c.txt',
    '[d]',
    'recipe = slapos.recipe.build:download',
    'shared = true',
    'url = ${:_profile_base_location_}/b.txt',
    'uses = ${c:target}',
    '',
  ].join('\n'),
  'a.txt': 'a\n',
  'b.txt': 'b\n',
  'c.txt': 'c\n',
};

/** Where each builder put an artifact, so that a fetch can move it to the fetcher's paths. */
interface BuiltUnder {
  readonly location: string;
  readonly sharedRoot: string;
  readonly buildoutDirectory: string;
}

/**
 * The node's build cache, stood in by folders on disk: one per signature holding the tree as built and
 * the paths it was built under. A fetch copies the tree and rewrites those paths in its text files.
 */
class FolderArtifactCache implements ArtifactCache {
  readonly fetched: string[] = [];
  readonly published: string[] = [];

  constructor(private readonly store: string) {}

  async fetch(request: ArtifactRequest): Promise<boolean> {
    const entry = join(this.store, request.signature);
    let built: BuiltUnder;
    try {
      built = JSON.parse(await readFile(join(entry, 'built-under.json'), 'utf8')) as BuiltUnder;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
      throw error;
    }
    const temp = `${request.location}.fetching`;
    await cp(join(entry, 'tree'), temp, { recursive: true, verbatimSymlinks: true });
    await relocate(temp, [
      [built.location, request.location], [built.sharedRoot, request.sharedRoot], [built.buildoutDirectory, request.buildoutDirectory],
    ]);
    await rename(temp, request.location);
    this.fetched.push(request.signature);
    return true;
  }

  async publish(request: ArtifactRequest): Promise<void> {
    const entry = join(this.store, request.signature);
    await mkdir(entry, { recursive: true });
    await cp(request.location, join(entry, 'tree'), { recursive: true, verbatimSymlinks: true });
    const built: BuiltUnder = { location: request.location, sharedRoot: request.sharedRoot, buildoutDirectory: request.buildoutDirectory };
    await writeFile(join(entry, 'built-under.json'), JSON.stringify(built));
    this.published.push(request.signature);
  }
}

/** Rewrites each `from` into its `to` in the text files of `dir` (the longest first); binaries stay as built. */
async function relocate(dir: string, pairs: [from: string, to: string][]): Promise<void> {
  const ordered = pairs.filter(([from, to]) => from !== to).sort((x, y) => y[0].length - x[0].length);
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const bytes = await readFile(path);
    if (bytes.includes(0)) continue;
    const text = ordered.reduce((t, [from, to]) => t.replaceAll(from, to), bytes.toString('utf8'));
    if (text !== bytes.toString('utf8')) await writeFile(path, text);
  }
}

describe('engine/install: shared parts', function () {
  this.timeout(60_000);
  const folders: string[] = [];
  let release: string;
  let downloads: string;

  before(() => {
    release = writeTree(RELEASE);
    execFileSync('chmod', ['+x', join(release, 'greet/configure'), join(release, 'hello/configure')]);
    downloads = writeTree(DOWNLOADS);
  });
  after(() => {
    removeTree(release);
    removeTree(downloads);
  });
  afterEach(() => {
    for (const folder of folders.splice(0)) removeTree(folder);
  });

  /** A new empty folder, removed after the test. */
  function emptyFolder(): string {
    const dir = writeTree({});
    folders.push(dir);
    return dir;
  }

  /** A new buildout directory holding a copy of `tree` (profile and sources). */
  function buildoutFrom(tree: string): string {
    const dir = emptyFolder();
    cpSync(tree, dir, { recursive: true });
    return dir;
  }

  async function build(dir: string, options: { cache?: ArtifactCache; assignments?: Assignment[] } = {}): Promise<{ report: InstallReport; lines: string[] }> {
    const lines: string[] = [];
    const report = await install({
      configFile: join(dir, 'buildout.cfg'),
      ...(options.assignments ? { assignments: options.assignments } : {}),
      ...(options.cache ? { artifactCache: options.cache } : {}),
      onEvent: (e) => e.type === 'log' && lines.push(`${e.part}: ${e.line}`),
    });
    return { report, lines };
  }

  const locationOf = (dir: string, part: string): string => readInstalled(join(dir, '.installed.cfg')).get(part)!.options['location']!;
  const compiled = (dir: string): string[] => (existsSync(join(dir, 'compiled.txt')) ? readFileSync(join(dir, 'compiled.txt'), 'utf8').split('\n').filter(Boolean) : []);
  const partLog = (dir: string, part: string): string => readFileSync(join(dir, '.slapmesh', 'logs', `${part}.log`), 'utf8');
  const run = (path: string): string => execFileSync(path, { encoding: 'utf8' });

  describe('signatures', () => {
    async function signatures(change: (dir: string) => void = () => undefined, assignments?: Assignment[]): Promise<Record<string, string>> {
      const dir = buildoutFrom(downloads);
      change(dir);
      await build(dir, assignments ? { assignments } : {});
      return signaturesIn(dir);
    }

    function signaturesIn(dir: string): Record<string, string> {
      const found: Record<string, string> = {};
      for (const part of ['a', 'b', 'd']) {
        const location = locationOf(dir, part);
        assert.equal(dirname(location), join(dir, 'shared', part));
        assert.match(basename(location), /^[0-9a-f]{64}$/);
        found[part] = basename(location);
      }
      return found;
    }

    it('are the same for the same part in two buildout directories', async () => {
      // The profile copied into each buildout directory (as a node unbundles a release)...
      assert.deepEqual(await signatures(), await signatures());
      // ... or read where it is, the buildout directory given on the command line (as slapgrid does).
      const elsewhere: Record<string, string>[] = [];
      for (const dir of [emptyFolder(), emptyFolder()]) {
        await install({ configFile: join(downloads, 'buildout.cfg'), assignments: [{ section: 'buildout', option: 'directory', value: dir }] });
        elsewhere.push(signaturesIn(dir));
      }
      assert.deepEqual(elsewhere[0], elsewhere[1]);
    });

    it('change with an option, and with the signature of a shared part depended on', async () => {
      const base = await signatures();
      const changed = await signatures(undefined, [{ section: 'a', option: 'mode', value: '0644' }]);
      assert.notEqual(changed['a'], base['a']);
      assert.notEqual(changed['b'], base['b'], 'b refers to ${a:location}');
      assert.equal(changed['d'], base['d']);
    });

    it('change with the content of a local source without checksum, and with a part depended on that is not shared', async () => {
      const base = await signatures();
      const newA = await signatures((dir) => writeFileSync(join(dir, 'a.txt'), 'another a\n'));
      assert.notEqual(newA['a'], base['a']);
      assert.notEqual(newA['b'], base['b']);
      assert.equal(newA['d'], base['d']);
      const newC = await signatures((dir) => writeFileSync(join(dir, 'c.txt'), 'another c\n'));
      assert.deepEqual([newC['a'], newC['b']], [base['a'], base['b']]);
      assert.notEqual(newC['d'], base['d'], 'd refers to ${c:target}');
    });
  });

  it('a second buildout fetches the first one\'s parts from the artifact cache, relocated, without building', async () => {
    const cache = new FolderArtifactCache(join(emptyFolder(), 'store'));
    const first = buildoutFrom(release);
    const built = await build(first, { cache });
    assert.deepEqual(built.report.installed, ['greet', 'hello']);
    assert.deepEqual(compiled(first), ['greet', 'hello']);
    const [greetSignature, helloSignature] = [basename(locationOf(first, 'greet')), basename(locationOf(first, 'hello'))];
    assert.deepEqual(cache.published, [greetSignature, helloSignature]);
    assert.ok(built.lines.includes(`hello: Shared part ${helloSignature}: it is not in the artifact cache`), built.lines.join('\n'));
    assert.equal(run(join(locationOf(first, 'hello'), 'bin/run-hello')), 'Hello from hello\n');

    const second = buildoutFrom(release);
    const fetched = await build(second, { cache });
    assert.deepEqual(fetched.report.installed, ['greet', 'hello']);
    assert.deepEqual(cache.fetched, [greetSignature, helloSignature]);
    assert.deepEqual(compiled(second), [], 'no build step ran');
    for (const part of ['greet', 'hello']) {
      assert.doesNotMatch(partLog(second, part), /^\[(configure|make|install)\]/m);
      assert.match(partLog(second, part), /fetched from the artifact cache/);
    }
    const greet = locationOf(second, 'greet');
    const hello = locationOf(second, 'hello');
    assert.deepEqual([greet, hello], [join(second, 'shared/greet', greetSignature), join(second, 'shared/hello', helloSignature)]);
    assert.ok(existsSync(join(greet, SHARED_MARKER)) && existsSync(join(hello, SHARED_MARKER)));

    // Nothing of the first buildout is needed any more: the copy's paths are its own.
    removeTree(first);
    assert.equal(readFileSync(join(greet, 'share/greet-prefix.txt'), 'utf8'), `${greet}\n`);
    assert.equal(readFileSync(join(hello, 'greet-location.txt'), 'utf8'), `${greet}\n`);
    assert.equal(run(join(hello, 'bin/run-hello')), 'Hello from hello\n');

    // Run again: nothing to do.
    const again = await build(second, { cache });
    assert.deepEqual(again.report, { installed: [], updated: ['greet', 'hello'], uninstalled: [] });
  });

  it('a buildout whose shared-part-list holds a complete part uses it; uninstalling leaves it for the others', async () => {
    const first = buildoutFrom(release);
    await build(first);
    const other = buildoutFrom(release);
    const roots = [{ section: 'buildout', option: 'shared-part-list', value: `${join(first, 'shared')}\n${join(other, 'own-shared')}` }];
    const { lines } = await build(other, { assignments: roots });
    assert.deepEqual(compiled(other), []);
    assert.equal(locationOf(other, 'hello'), locationOf(first, 'hello'));
    assert.ok(lines.includes(`hello: Shared part ${locationOf(first, 'hello')} is already installed: using it`), lines.join('\n'));

    // A part that is new goes under the last root.
    const bonjourRoots = [...roots, { section: 'greet', option: 'configure-options', value: '--greeting=Bonjour' }];
    const changed = await build(other, { assignments: bonjourRoots });
    assert.deepEqual(changed.report.installed, ['greet', 'hello'], 'hello depends on greet');
    assert.equal(dirname(dirname(locationOf(other, 'hello'))), join(other, 'own-shared'));
    assert.equal(run(join(locationOf(other, 'hello'), 'bin/run-hello')), 'Bonjour from hello\n');
    assert.deepEqual(compiled(other), ['greet', 'hello']);

    const bonjour = locationOf(other, 'hello');
    const removed = await build(other, { assignments: [...bonjourRoots, { section: 'buildout', option: 'parts', value: 'greet' }] });
    assert.deepEqual(removed.report.uninstalled, ['hello']);
    assert.ok(existsSync(join(bonjour, SHARED_MARKER)));
    assert.equal(run(join(bonjour, 'bin/run-hello')), 'Bonjour from hello\n');
  });

  it('an unfinished shared part (no marker) is built again', async () => {
    const dir = buildoutFrom(release);
    await build(dir);
    const hello = locationOf(dir, 'hello');
    rmSync(join(hello, SHARED_MARKER));
    const { report, lines } = await build(dir);
    assert.deepEqual(report, { installed: ['hello'], updated: ['greet'], uninstalled: ['hello'] });
    assert.ok(lines.includes(`hello: Removing ${hello}: an unfinished install (no ${SHARED_MARKER})`), lines.join('\n'));
    assert.deepEqual(compiled(dir), ['greet', 'hello', 'hello']);
    assert.ok(existsSync(join(hello, SHARED_MARKER)));
    assert.equal(run(join(hello, 'bin/run-hello')), 'Hello from hello\n');
  });

  it('a publish that fails is logged, and the part is installed all the same', async () => {
    const store = join(buildoutFrom(downloads), 'a.txt'); // a file: no folder can be made in it
    const cache = new FolderArtifactCache(store);
    const dir = buildoutFrom(release);
    const { lines } = await build(dir, { cache, assignments: [{ section: 'buildout', option: 'parts', value: 'greet' }] });
    const greet = locationOf(dir, 'greet');
    assert.ok(existsSync(join(greet, SHARED_MARKER)));
    assert.ok(lines.some((l) => l.startsWith(`greet: Could not publish shared part ${basename(greet)} to the artifact cache: Error: ENOTDIR`)), lines.join('\n'));
  });

  it('a fetch that fails is logged, and the part is built', async () => {
    const store = emptyFolder();
    const dir = buildoutFrom(downloads);
    const probe = buildoutFrom(downloads);
    await build(probe);
    const signature = basename(locationOf(probe, 'a'));
    mkdirSync(join(store, signature));
    writeFileSync(join(store, signature, 'built-under.json'), '{ not json');
    const { report, lines } = await build(dir, { cache: new FolderArtifactCache(store) });
    assert.ok(report.installed.includes('a'));
    assert.ok(lines.some((l) => l.startsWith(`a: Shared part ${signature}: fetching it from the artifact cache failed (SyntaxError:`)), lines.join('\n'));
    assert.equal(readFileSync(join(locationOf(dir, 'a'), 'a'), 'utf8'), 'a\n');
  });

  it('refuses a shared part with a destination or a location of its own', async () => {
    const dir = buildoutFrom(downloads);
    await assert.rejects(build(dir, { assignments: [{ section: 'a', option: 'destination', value: join(dir, 'a.copy') }] }),
      /\[a\] destination cannot be used with shared = true/);
    await assert.rejects(build(dir, { assignments: [{ section: 'a', option: 'location', value: join(dir, 'elsewhere') }] }),
      (error: Error) => error.name === 'RecipeError' && /\[a\] a shared part's location is chosen by its signature/.test(error.message));
  });
});
