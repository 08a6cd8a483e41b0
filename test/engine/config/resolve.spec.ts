import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseAssignment } from '../../../engine/config/configuration.js';
import { ConfigError } from '../../../engine/config/errors.js';
import { resolveConfiguration, type ResolveResult } from '../../../engine/config/resolve.js';
import { removeTree, writeTree } from '../../helpers/files.js';

const roots: string[] = [];
afterEach(() => roots.splice(0).forEach(removeTree));

async function resolve(files: Record<string, string>, args: string[] = [], root = 'buildout.cfg'): Promise<ResolveResult & { dir: string }> {
  const dir = writeTree(files);
  roots.push(dir);
  const result = await resolveConfiguration({ configFile: root, cwd: dir, assignments: args.map(parseAssignment) });
  return { ...result, dir };
}

async function fatal(files: Record<string, string>, args: string[] = []): Promise<{ error: ConfigError; dir: string }> {
  const dir = writeTree(files);
  roots.push(dir);
  try {
    await resolveConfiguration({ configFile: 'buildout.cfg', cwd: dir, assignments: args.map(parseAssignment) });
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return { error, dir };
  }
  assert.fail('expected a fatal configuration error');
}

describe('engine/config resolve: extends and merging (the SlapOS fork order)', () => {
  it('reads a diamond once, in depth-first postorder (common, left, right, top)', async () => {
    const r = await resolve({
      'buildout.cfg': '[buildout]\nextends = l.cfg r.cfg\n[s]\nx += top\n',
      'l.cfg': '[buildout]\nextends = d/common.cfg\n[s]\nx += left\nwho = left\n',
      'r.cfg': '[buildout]\nextends = d/common.cfg\n[s]\nx += right\n',
      'd/common.cfg': '[s]\nx = common\nwho = common\n',
    });
    assert.equal(r.sections['s']!['x'], 'common\nleft\nright\ntop');
    assert.equal(r.sections['s']!['who'], 'left');
  });

  it('applies += and -= along nested extends', async () => {
    const r = await resolve({
      'buildout.cfg': '[buildout]\nextends = base.cfg sub/mid.cfg\n[a]\nx += top\n   top2\ny -= base\n',
      'base.cfg': '[a]\nx = b1\n b2\ny = base\norder = base\nz = keep\n',
      'sub/mid.cfg': '[buildout]\nextends = deeper/leaf.cfg\n[a]\norder = mid\nx += mid\n',
      'sub/deeper/leaf.cfg': '[a]\norder = leaf\nleaf = yes\nx -= b1\n',
    });
    assert.deepEqual(
      { x: r.sections['a']!['x'], y: r.sections['a']!['y'], order: r.sections['a']!['order'], z: r.sections['a']!['z'], leaf: r.sections['a']!['leaf'] },
      { x: 'b2\nmid\ntop\ntop2', y: '', order: 'mid', z: 'keep', leaf: 'yes' },
    );
  });

  it('applies a file reached twice only once', async () => {
    const r = await resolve({
      'buildout.cfg': '[buildout]\nextends = a.cfg b.cfg\n',
      'a.cfg': '[buildout]\nextends = p.cfg\n',
      'b.cfg': '[buildout]\nextends = ./sub/../p.cfg\n',
      'p.cfg': '[p]\nx += 1\n',
    });
    assert.equal(r.sections['p']!['x'], '1');
  });

  it('makes += an assignment in a new section, and starts with a newline on an existing one', async () => {
    const r = await resolve({
      'buildout.cfg': '[buildout]\nextends = base.cfg\nfind-links += x\n[new]\nv += 1\nw -= 2\n[old]\nv += 1\n',
      'base.cfg': '[old]\nother = 1\n',
    });
    assert.equal(r.sections['new']!['v'], '1');
    assert.equal(r.sections['new']!['w'], '');
    assert.equal(r.sections['old']!['v'], '\n1');
    assert.equal(r.sections['buildout']!['find-links'], '\nx');
  });

  it('appends to buildout defaults, which come first (allow-hosts stays a wildcard)', async () => {
    const r = await resolve({ 'buildout.cfg': '[buildout]\nallow-hosts += example.org\n' });
    assert.equal(r.sections['buildout']!['allow-hosts'], '*\nexample.org');
  });

  it('removes lines, not words, with -=', async () => {
    const r = await resolve({ 'buildout.cfg': '[s]\nparts = p1 p2\nlist =\n  p1\n  p2\n' }, ['s:parts-=p1', 's:list-=p1']);
    assert.equal(r.sections['s']!['parts'], 'p1 p2');
    assert.equal(r.sections['s']!['list'], 'p2');
  });

  it('applies += before -= whatever their order in the file', async () => {
    const r = await resolve({ 'buildout.cfg': '[s]\nu = base\nu -= base\nu += new\n' });
    assert.equal(r.sections['s']!['u'], 'new');
  });
});

describe('engine/config resolve: substitution', () => {
  it('substitutes lazily through chains, ${:x} meaning the current section', async () => {
    const r = await resolve({ 'buildout.cfg': '[s]\na = A\ncur = ${:a}\nchain1 = ${:chain2}-1\nchain2 = ${t:b}-2\n[t]\nb = ${s:a}B\n' });
    assert.deepEqual(r.sections['s'], {
      _profile_base_location_: r.dir, a: 'A', chain1: 'AB-2-1', chain2: 'AB-2', cur: 'A',
    });
  });

  it('evaluates macros in the user context, with += and -= on the macro values', async () => {
    const r = await resolve({
      'buildout.cfg': '[buildout]\nextends = base.cfg\n[macro]\nwho = overridden-in-top\n',
      'base.cfg': [
        '[macro]', 'greeting = hello ${:who} from ${:_buildout_section_name_}', 'who = world', 'list = a', '  b',
        '[user]', '<= macro', 'who = user', 'list += c', 'list -= a',
        '[user2]', '<= user', '   other',
        '[other]', 'who = other', 'extra = 1', '',
      ].join('\n'),
    });
    assert.equal(r.sections['user']!['greeting'], 'hello user from user');
    assert.equal(r.sections['user']!['list'], 'b\nc');
    assert.equal(r.sections['user2']!['greeting'], 'hello other from user2');
    assert.equal(r.sections['user2']!['extra'], '1');
    assert.equal(r.sections['macro']!['greeting'], 'hello overridden-in-top from macro');
    assert.equal(r.sections['user']!['<'], undefined);
  });

  it('reports macro loops and unknown macros as section errors', async () => {
    const r = await resolve({ 'buildout.cfg': '[loop1]\n<= loop2\n[loop2]\n<= loop1\n[u]\n<= nosuch\n' });
    assert.match(r.errors['loop1']!, /Infinite extending loop 'loop1'/);
    assert.match(r.errors['u']!, /No section named 'nosuch'/);
  });

  it('gives the referencing section name for ${other:_buildout_section_name_}', async () => {
    const r = await resolve({ 'buildout.cfg': '[s]\nme = ${:_buildout_section_name_}\nquirk = ${t:_buildout_section_name_}\n[t]\n' });
    assert.equal(r.sections['s']!['me'], 's');
    assert.equal(r.sections['s']!['quirk'], 's');
  });

  it('turns $${ into a literal ${ that is not substituted again, and keeps other $$', async () => {
    const r = await resolve({
      'buildout.cfg': '[s]\na = A\nesc = $${s:a} and $$ and ${s:a}\nshell = $${PYTHON:+--with-python=$PYTHON}\ncopy = ${:shell}\nmake = $$d ${:a}\n',
    });
    assert.equal(r.sections['s']!['esc'], '${s:a} and $$ and A');
    assert.equal(r.sections['s']!['shell'], '${PYTHON:+--with-python=$PYTHON}');
    assert.equal(r.sections['s']!['copy'], '${PYTHON:+--with-python=$PYTHON}');
    assert.equal(r.sections['s']!['make'], '$$d A');
  });

  it('reports bad references with zc.buildout messages', async () => {
    const r = await resolve({
      'buildout.cfg': [
        '[a]', 'v = ${nocolon}', '[b]', 'v = ${a:b:c}', '[c]', 'v = ${s/x:y}', '[d]', 'v = ${s:}',
        '[e]', 'v = ${nosuch:b}', '[f]', 'v = ${f:nosuch}', '[g]', 'v = ${s:y', '',
      ].join('\n'),
    });
    assert.match(r.errors['a']!, /doesn't contain a colon/);
    assert.match(r.errors['b']!, /has too many colons/);
    assert.match(r.errors['c']!, /section name in substitution, \$\{s\/x:y\}, has invalid characters/);
    assert.match(r.errors['d']!, /option name in substitution, \$\{s:\}, has invalid characters/);
    assert.match(r.errors['e']!, /The referenced section, 'nosuch', was not defined/);
    assert.match(r.errors['f']!, /Referenced option does not exist: f nosuch/);
    assert.equal(r.sections['g']!['v'], '${s:y');
  });

  it('names the whole chain of a circular reference', async () => {
    const r = await resolve({ 'buildout.cfg': '[a]\nx = ${b:y}\n[b]\ny = ${a:x}\n' });
    assert.match(r.errors['a']!, /a:x -> b:y -> a:x/);
  });

  it('names the chain that reached a missing option', async () => {
    const r = await resolve({ 'buildout.cfg': '[a]\nx = ${b:y}\n[b]\ny = ${c:z}\n[c]\n' });
    assert.match(r.errors['a']!, /Referenced option does not exist: c z \(a:x -> b:y -> c:z\)/);
  });

  it('lets later sections use the good options of a failed section (zc.buildout evaluation order)', async () => {
    const r = await resolve({ 'buildout.cfg': '[a]\nx = ${b:good}\n[b]\ngood = 1\nbad = ${nosuch:x}\n[c]\nx = ${b:good}\n' });
    assert.deepEqual(Object.keys(r.errors), ['a', 'b']);
    assert.equal(r.sections['c']!['x'], '1');
  });

  it('adds location to sections with a recipe, and only to them', async () => {
    const r = await resolve({ 'buildout.cfg': '[p]\nrecipe = any.recipe\n[q]\nrecipe = x\nlocation = /here\n[n]\nv = 1\n' });
    assert.equal(r.sections['p']!['location'], join(r.dir, 'parts', 'p'));
    assert.equal(r.sections['q']!['location'], '/here');
    assert.equal(r.sections['n']!['location'], undefined);
  });

  it('resolves ${:_profile_base_location_} to the folder of the file where it is written', async () => {
    const r = await resolve({
      'buildout.cfg': '[buildout]\nextends = component/apache-php/buildout.cfg\n',
      'component/apache/buildout.cfg': '[apache]\npatches = ${:_profile_base_location_}/fix.patch\n',
      'component/apache-php/buildout.cfg': '[buildout]\nextends = ../apache/buildout.cfg\n[apache]\nshared = false\n',
    });
    assert.equal(r.sections['apache']!['patches'], `${r.dir}/component/apache-php/../apache/fix.patch`);
    assert.equal(r.sections['apache']!['_profile_base_location_'], join(r.dir, 'component/apache-php'));
  });
});

describe('engine/config resolve: [buildout], command line, conditions', () => {
  it('computes the standard folders from the profile folder', async () => {
    const r = await resolve({ 'buildout.cfg': '[s]\ndirs = ${buildout:directory} ${buildout:bin-directory} ${buildout:eggs-directory} ${buildout:installed}\n' });
    const d = r.dir;
    assert.equal(r.sections['s']!['dirs'], `${d} ${d}/bin ${d}/eggs ${d}/.installed.cfg`);
    assert.equal(r.sections['versions']!['zc.recipe.egg'], '>=2.0.6');
  });

  it('makes a relative download-cache absolute from the file that set it', async () => {
    const r = await resolve({ 'buildout.cfg': '[buildout]\nextends = sub/base.cfg\n', 'sub/base.cfg': '[buildout]\ndownload-cache = cache\n' });
    assert.equal(r.sections['buildout']!['download-cache'], join(r.dir, 'sub/cache'));
  });

  it('applies command-line assignments last, creating sections as needed', async () => {
    const r = await resolve({ 'buildout.cfg': '[s]\na = file\nlist = one\n' }, ['s:a=cli', 's:list+=two', 'news:x=1', 'parts=p']);
    assert.equal(r.sections['s']!['a'], 'cli');
    assert.equal(r.sections['s']!['list'], 'one\ntwo');
    assert.equal(r.sections['news']!['x'], '1');
    assert.equal(r.sections['buildout']!['parts'], 'p');
  });

  it('reads command-line extends after the profile, once', async () => {
    const r = await resolve({ 'buildout.cfg': '[s]\na = 1\n', 'extra.cfg': '[s]\na = 2\n' }, ['buildout:extends=extra.cfg']);
    assert.equal(r.sections['s']!['a'], '2');
  });

  it('keeps sections whose condition holds and skips the others', async () => {
    const r = await resolve({
      'buildout.cfg': '[s]\na = 1\n[s:python2]\na = 2\n[s:linux and python3]\nb = 3\n[t:sys.version_info < (3,8)]\nx = 1\n',
    });
    assert.equal(r.sections['s']!['a'], '1');
    assert.equal(r.sections['s']!['b'], '3');
    assert.equal(r.sections['t'], undefined);
  });
});

describe('engine/config resolve: fatal errors are located', () => {
  it('names the files of an extends cycle', async () => {
    const { error, dir } = await fatal({ 'buildout.cfg': '[buildout]\nextends = b.cfg\n', 'b.cfg': '[buildout]\nextends = buildout.cfg\n' });
    assert.equal(error.diagnostics.length, 1);
    assert.equal(error.diagnostics[0]!.file, join(dir, 'b.cfg'));
    assert.equal(error.diagnostics[0]!.line, 2);
    assert.match(error.message, /extends cycle: .*buildout\.cfg -> .*b\.cfg -> .*buildout\.cfg/);
  });

  it('names the file that extends a missing file', async () => {
    const { error, dir } = await fatal({ 'buildout.cfg': '[buildout]\nextends =\n  base.cfg\n', 'base.cfg': '[buildout]\nextends = nope.cfg\n' });
    assert.equal(error.diagnostics[0]!.file, join(dir, 'base.cfg'));
    assert.equal(error.diagnostics[0]!.line, 2);
    assert.match(error.message, /nope\.cfg: no such file/);
  });

  it('reports the parse errors of every file', async () => {
    const { error } = await fatal({ 'buildout.cfg': '[buildout]\nextends = b.cfg\nbad line\n', 'b.cfg': '[s]\nfoo: bar\n' });
    assert.deepEqual(error.diagnostics.map((d) => `${d.file.split('/').pop()}:${d.line}`), ['buildout.cfg:3', 'b.cfg:2']);
  });

  it('refuses a boolean that is not true or false, at its line', async () => {
    const { error, dir } = await fatal({ 'buildout.cfg': '[buildout]\n\noffline = yes\n' });
    assert.equal(error.message, `${join(dir, 'buildout.cfg')}:3: Invalid value for 'offline' option: 'yes' (use true or false)`);
  });

  it('refuses a [buildout] option that cannot be substituted', async () => {
    const { error } = await fatal({ 'buildout.cfg': '[buildout]\nparts = ${nosuch:x}\n' });
    assert.match(error.message, /buildout\.cfg:2: in \[buildout\]: The referenced section, 'nosuch', was not defined/);
  });

  it('reports a missing root file', async () => {
    const { error } = await fatal({});
    assert.match(error.message, /buildout\.cfg:1: cannot read the configuration: no such file/);
  });
});

describe('engine/config resolve: extended URLs', () => {
  let server: Server;
  let base: string;
  let hits = 0;
  before(async () => {
    server = createServer((req, res) => {
      hits++;
      if (req.url === '/profiles/base.cfg') res.end('[buildout]\nextends = common.cfg\n[s]\nfrom = ${:_profile_base_location_}\n');
      else if (req.url === '/profiles/common.cfg') res.end('[s]\ncommon = yes\n');
      else res.writeHead(404).end();
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('downloads extended files relative to their URL and fills the extends-cache', async () => {
    const r = await resolve({ 'buildout.cfg': `[buildout]\nextends = ${base}/profiles/base.cfg\nextends-cache = cache\n` });
    assert.equal(r.sections['s']!['from'], `${base}/profiles`);
    assert.equal(r.sections['s']!['common'], 'yes');
    const before = hits;
    const dir = r.dir;
    const offline = await resolveConfiguration({ configFile: 'buildout.cfg', cwd: dir, assignments: [parseAssignment('buildout:offline=true')] });
    assert.equal(offline.sections['s']!['common'], 'yes');
    assert.equal(hits, before, 'offline mode must not touch the network');
  });

  it('refuses to download in offline mode without a cached copy', async () => {
    const { error } = await fatal({ 'buildout.cfg': `[buildout]\nextends = ${base}/profiles/base.cfg\noffline = true\n` });
    assert.match(error.message, /in offline mode/);
  });

  it('names the extending file when a URL cannot be fetched', async () => {
    const { error } = await fatal({ 'buildout.cfg': `[buildout]\nextends = ${base}/missing.cfg\n` });
    assert.match(error.message, /buildout\.cfg:2: cannot read extended file .*missing\.cfg: .*404/);
  });
});
