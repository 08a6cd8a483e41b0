import { strict as assert } from 'node:assert';
import { main } from '../../cli/main.js';
import type { CliIo } from '../../cli/io.js';
import { removeTree, writeTree } from '../helpers/files.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cwd: string, ...argv: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), cwd, env: {}, isTTY: false };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

describe('cli: slapmesh buildout', () => {
  let dir: string;
  beforeEach(() => {
    dir = writeTree({
      'buildout.cfg': '[buildout]\nextends = base.cfg\nparts = app\n[app]\n<= template\nport = 8080\nlist += two\n',
      'base.cfg': '[template]\nrecipe = slapos.recipe.template\nurl = ${:_profile_base_location_}/app.in\nlist = one\n[broken]\nx = ${nosuch:y}\n',
      'bad.cfg': '[s]\nfoo: bar\n  [ok]\n[buildout]\nextends = missing.cfg\n',
    });
  });
  afterEach(() => removeTree(dir));

  it('resolve --json prints sections and errors and exits 0', async () => {
    const r = await run(dir, 'buildout', 'resolve', '--json', 'app:port=9090');
    assert.equal(r.code, 0);
    const result = JSON.parse(r.stdout) as { sections: Record<string, Record<string, string>>; errors: Record<string, string> };
    assert.deepEqual(result.sections['app'], {
      _profile_base_location_: dir, list: 'one\ntwo', location: `${dir}/parts/app`, port: '9090',
      recipe: 'slapos.recipe.template', url: `${dir}/app.in`,
    });
    assert.match(result.errors['broken']!, /The referenced section, 'nosuch', was not defined/);
    assert.equal(r.stderr, '');
  });

  it('resolve reads -c relative to the current folder', async () => {
    const r = await run(dir, 'buildout', 'resolve', '-c', 'base.cfg', '--json');
    assert.equal(r.code, 0);
    assert.ok('template' in (JSON.parse(r.stdout) as { sections: object }).sections);
  });

  it('a configuration that cannot be used prints every located error, no JSON, and exits 1', async () => {
    const r = await run(dir, 'buildout', 'resolve', '-c', 'bad.cfg', '--json');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.deepEqual(r.stderr.trim().split('\n').map((l) => l.replace(`${dir}/`, '').split(': ')[0]), ['bad.cfg:2', 'bad.cfg:3', 'bad.cfg:5']);
    assert.ok(!r.stderr.includes('    at '), 'no stack trace');
  });

  it('refuses a malformed assignment with one line', async () => {
    const r = await run(dir, 'buildout', 'resolve', 'a:b:c=1', '--json');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^slapmesh: invalid option a:b:c: one colon at most\n$/);
  });

  it('annotate shows raw values with FILE:LINE of each part', async () => {
    const r = await run(dir, 'buildout', 'annotate', '--section', 'app', 'template');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /\[app\]\n<= template\n {4}buildout\.cfg:5\n/);
    assert.match(r.stdout, /list \+= two\n {4}buildout\.cfg:7\n/); // a macro user keeps its increment until expanded
    assert.match(r.stdout, /url= .*\/app\.in\n {4}base\.cfg:3\n/);
    assert.ok(!r.stdout.includes('[broken]'));
  });

  it('annotate keeps increments apart from the value they extend', async () => {
    const d = writeTree({ 'buildout.cfg': '[buildout]\nextends = base.cfg\n[s]\nx += top\n', 'base.cfg': '[s]\nx = a\n' });
    try {
      const r = await run(d, 'buildout', 'annotate', '--section', 's');
      assert.match(r.stdout, /\[s\]\n_profile_base_location_= .*\n {4}buildout\.cfg:3\nx= a\ntop\n {4}base\.cfg:2\n\+= {2}buildout\.cfg:4\n/);
    } finally {
      removeTree(d);
    }
  });

  it('demo: a two-node mesh; B requests an instance of the hello release A supplies, fetches its greeting, destroys it', async function () {
    this.timeout(120_000);
    const r = await run(dir, 'demo');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /A supplied the hello release/);
    assert.match(r.stdout, /host A, url http:\/\/127\.[0-9.]+:\d+\//);
    assert.match(r.stdout, /the instance says: Hello World!/);
    assert.match(r.stdout, /B destroyed the instance/);
    assert.match(r.stdout, /Done: both nodes stopped/);
  });
});
