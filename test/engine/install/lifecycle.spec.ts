import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeValue, encodeValue, readInstalled, writeInstalled } from '../../../engine/install/installed.js';
import { install, InstallError, type InstallEvent } from '../../../engine/install/installer.js';
import { registerRecipe, RecipeError } from '../../../engine/install/recipe.js';
import { removeTree, writeTree } from '../../helpers/files.js';

/** What the test recipes did, in order: `install:a`, `update:a`, `uninstall:a`. */
const calls: string[] = [];

// A recipe that writes `content` into a file at its location.
registerRecipe('test.recipes:file', {
  init(part) {
    part.options.set('computed', `${part.name}-computed`);
  },
  async install(part) {
    calls.push(`install:${part.name}`);
    const location = part.options.require('location');
    part.created(location);
    mkdirSync(location, { recursive: true });
    writeFileSync(join(location, 'content'), part.options.get('content') ?? '');
    part.log(`wrote ${location}/content`);
    return [];
  },
  async update(part) {
    calls.push(`update:${part.name}`);
  },
  async uninstall(part) {
    calls.push(`uninstall:${part.name}`);
  },
});

// A recipe that creates files, then fails.
registerRecipe('test.recipes:fail', {
  async install(part) {
    calls.push(`install:${part.name}`);
    const location = part.options.require('location');
    mkdirSync(location, { recursive: true });
    writeFileSync(join(location, 'partial'), 'half done');
    const other = join(part.buildout.directory, 'registered-output');
    part.created(other);
    writeFileSync(other, 'half done');
    throw new RecipeError('the build broke');
  },
});

// Two parts that can only finish when both have started: they build in parallel or not at all.
const started = new Map<string, () => void>();
const waiting = new Map<string, Promise<void>>();
for (const name of ['left', 'right']) waiting.set(name, new Promise((resolve) => started.set(name, resolve)));
registerRecipe('test.recipes:rendezvous', {
  async install(part) {
    started.get(part.name)!();
    await waiting.get(part.name === 'left' ? 'right' : 'left');
    return [];
  },
});

const profile = (parts: string, extra = '') => `[buildout]
parts = ${parts}

[a]
recipe = test.recipes:file
content = A

[b]
recipe = test.recipes:file
content = B uses \${a:location} and \${a:computed}

[c]
recipe = test.recipes:file
content = C
${extra}`;

describe('engine/install lifecycle', () => {
  let dir: string;
  const run = async (text?: string, jobs = 1) => {
    if (text !== undefined) writeFileSync(join(dir, 'buildout.cfg'), text);
    calls.length = 0;
    const events: InstallEvent[] = [];
    const report = await install({ configFile: 'buildout.cfg', cwd: dir, jobs, onEvent: (e) => events.push(e) });
    return { report, events };
  };

  beforeEach(() => {
    dir = writeTree({});
  });
  afterEach(() => removeTree(dir));

  it('installs the parts and the parts they refer to, referenced parts first', async () => {
    const { report } = await run(profile('b c'));
    assert.deepEqual(calls, ['install:a', 'install:b', 'install:c']);
    assert.deepEqual(report.installed, ['a', 'b', 'c']);
    assert.equal(readFileSync(join(dir, 'parts/b/content'), 'utf8'), `B uses ${dir}/parts/a and a-computed`);
    const state = readInstalled(join(dir, '.installed.cfg'));
    assert.deepEqual([...state.keys()], ['a', 'b', 'c']);
    assert.deepEqual(state.get('a')!.paths, [join(dir, 'parts/a')]);
    assert.equal(state.get('a')!.options['content'], 'A');
    assert.match(state.get('a')!.options['__buildout_signature__']!, /^test\.recipes:file@1-[0-9a-f]{32}$/);
    assert.ok(existsSync(join(dir, 'bin')) && existsSync(join(dir, '.slapmesh/logs/a.log')));
  });

  it('changes nothing when run again on an unchanged profile', async () => {
    await run(profile('b c'));
    const before = readFileSync(join(dir, '.installed.cfg'), 'utf8');
    const { report, events } = await run();
    assert.deepEqual(calls, ['update:a', 'update:b', 'update:c']);
    assert.deepEqual(report.installed, []);
    assert.deepEqual(report.uninstalled, []);
    assert.ok(events.every((e) => e.type === 'update' || e.type === 'done'));
    assert.equal(readFileSync(join(dir, '.installed.cfg'), 'utf8'), before);
  });

  it('reinstalls a changed part and the parts that depend on it, only', async () => {
    await run(profile('b c'));
    await run(profile('b c').replace('content = A', 'content = A2'));
    assert.deepEqual(calls, ['uninstall:b', 'uninstall:a', 'install:a', 'install:b', 'update:c']);
    assert.equal(readFileSync(join(dir, 'parts/a/content'), 'utf8'), 'A2');
  });

  it('uninstalls a removed part and deletes its files', async () => {
    await run(profile('b c'));
    await run(profile('b'));
    assert.deepEqual(calls, ['uninstall:c', 'update:a', 'update:b']);
    assert.ok(!existsSync(join(dir, 'parts/c')));
    assert.deepEqual([...readInstalled(join(dir, '.installed.cfg')).keys()], ['a', 'b']);
  });

  it('installs again a part whose files were deleted', async () => {
    await run(profile('c'));
    rmSync(join(dir, 'parts/c'), { recursive: true });
    await run();
    assert.deepEqual(calls, ['uninstall:c', 'install:c']);
    assert.ok(existsSync(join(dir, 'parts/c/content')));
  });

  it('leaves nothing of a failed part, keeps the parts before it, and resumes on the next run', async () => {
    const failing = profile('a broken c', '[broken]\nrecipe = test.recipes:fail\n');
    await assert.rejects(run(failing), (error: unknown) => {
      assert.ok(error instanceof InstallError);
      assert.equal(error.part, 'broken');
      assert.match(error.message, /\[broken\] install failed: the build broke/);
      return true;
    });
    assert.deepEqual(calls, ['install:a', 'install:broken']);
    assert.ok(!existsSync(join(dir, 'parts/broken')), 'no partial location');
    assert.ok(!existsSync(join(dir, 'registered-output')), 'no registered file');
    assert.deepEqual([...readInstalled(join(dir, '.installed.cfg')).keys()], ['a']);
    await run(profile('a broken c', '[broken]\nrecipe = test.recipes:file\n'));
    assert.deepEqual(calls, ['update:a', 'install:broken', 'install:c']);
  });

  it('names the section and the recipe it does not have', async () => {
    await assert.rejects(run('[buildout]\nparts = egg\n[egg]\nrecipe = zc.recipe.egg\neggs = six\n'),
      /\[egg\]: recipe zc\.recipe\.egg is not available in slapmesh/);
    assert.ok(!existsSync(join(dir, '.installed.cfg')));
  });

  it('refuses a part without a recipe', async () => {
    await assert.rejects(run('[buildout]\nparts = nothing\n[nothing]\nx = 1\n'), /\[nothing\] is in \[buildout\] parts but has no recipe/);
  });

  it('builds independent parts in parallel with -j 2', async () => {
    await run('[buildout]\nparts = left right\n[left]\nrecipe = test.recipes:rendezvous\n[right]\nrecipe = test.recipes:rendezvous\n', 2);
    assert.deepEqual([...readInstalled(join(dir, '.installed.cfg')).keys()].sort(), ['left', 'right']);
  });
});

describe('engine/install installed state', () => {
  it('encodes whitespace a re-read would lose, as zc.buildout does', () => {
    assert.equal(encodeValue('line1\n\nline3'), 'line1\n\t%(__buildout_space_n__)sline3');
    const spacey = '  lead and trail  \n\n  second\tline \n';
    assert.equal(encodeValue(spacey),
      '%(__buildout_space__)s%(__buildout_space__)slead and trail%(__buildout_space__)s%(__buildout_space__)s\n\t%(__buildout_space_n__)s%(__buildout_space__)s%(__buildout_space__)ssecond\tline%(__buildout_space__)s%(__buildout_space_n__)s');
  });

  it('reads back exactly what it wrote', () => {
    const dir = writeTree({});
    try {
      const values = ['', 'plain', '  lead and trail  \n\n  second\tline \n', '\nleading', 'a\n  b', ' \r\f\v ', '# not a comment'];
      const options = Object.fromEntries(values.map((v, i) => [`o${i}`, v]));
      const file = join(dir, '.installed.cfg');
      writeInstalled(file, new Map([['p', { options, paths: ['/x', '/y z'] }]]));
      assert.deepEqual(readInstalled(file).get('p'), { options, paths: ['/x', '/y z'] });
      assert.equal(decodeValue('a%(__buildout_space__)sb'), 'a b');
    } finally {
      removeTree(dir);
    }
  });
});
