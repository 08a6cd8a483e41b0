import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { c as tarCreate } from 'tar';
import { install, InstallError } from '../../../engine/install/installer.js';
import { removeTree, writeTree } from '../../helpers/files.js';

/** A configure/make project in shell and make only: configure writes the Makefile, install a script. */
const PROJECT: Record<string, string> = {
  'hello-1.0/configure': [
    '#!/bin/sh',
    'prefix=/usr/local; greeting=Hello',
    'for arg in "$@"; do',
    '  case "$arg" in',
    '    --prefix=*) prefix="${arg#--prefix=}" ;;',
    '    --with-greeting=*) greeting="${arg#--with-greeting=}" ;;',
    '    *) echo "configure: unknown option $arg" >&2; exit 1 ;;',
    '  esac',
    'done',
    'echo "configure: prefix is $prefix"',
    'printf "prefix = %s\\nGREETING = %s\\n" "$prefix" "$greeting" > Makefile',
    'cat Makefile.in >> Makefile',
    '',
  ].join('\n'),
  'hello-1.0/Makefile.in': [
    'all: hello',
    'hello: hello.in',
    '\tsed -e "s|@GREETING@|$(GREETING)|" -e "s|@FLAVOUR@|$$FLAVOUR|" hello.in > hello',
    'install: hello',
    '\tmkdir -p $(prefix)/bin',
    '\tcp hello $(prefix)/bin/hello',
    '\tchmod 755 $(prefix)/bin/hello',
    '\techo "$(EXTRA)" > $(prefix)/extra.txt',
    'broken:',
    '\t@echo about to fail; exit 3',
    '',
  ].join('\n'),
  'hello-1.0/hello.in': '#!/bin/sh\necho "@GREETING@ @FLAVOUR@"\n',
};

const PATCH = '--- hello.in\n+++ hello.in\n@@ -1,2 +1,3 @@\n #!/bin/sh\n echo "@GREETING@ @FLAVOUR@"\n+echo patched\n';

const md5 = (path: string) => createHash('md5').update(readFileSync(path)).digest('hex');

describe('engine/recipes: slapos.recipe.cmmi', function () {
  this.timeout(20_000);
  let sources: string;
  let archive: string;
  let dir: string;

  before(async () => {
    sources = writeTree({ ...PROJECT, 'fix.patch': PATCH });
    execFileSync('chmod', ['+x', join(sources, 'hello-1.0/configure')]);
    archive = join(sources, 'hello-1.0.tar.gz');
    await tarCreate({ gzip: true, file: archive, cwd: sources, portable: true }, ['hello-1.0']);
  });
  after(() => removeTree(sources));
  beforeEach(() => {
    dir = writeTree({});
  });
  afterEach(() => removeTree(dir));

  async function build(section: string[], buildout: string[] = []): Promise<string[]> {
    const lines: string[] = [];
    const cfg = ['[buildout]', 'parts = hello', ...buildout, '[hello]', ...section, ''].join('\n');
    writeFileSync(join(dir, 'buildout.cfg'), cfg);
    await install({
      configFile: join(dir, 'buildout.cfg'),
      onEvent: (e) => e.type === 'log' && lines.push(e.line),
    });
    return lines;
  }

  const run = (path: string) => execFileSync(path, { encoding: 'utf8' });

  it('downloads, verifies, patches, configures with options and environment, makes and installs', async () => {
    const log = await build([
      'recipe = slapos.recipe.cmmi',
      `url = ${archive}#${md5(archive)}`,
      'configure-options = --with-greeting=Bonjour',
      'environment =',
      '  FLAVOUR=sweet:%(PATH)s',
      'make-options = EXTRA=from-make-options',
      `patches = ${join(sources, 'fix.patch')}#${md5(join(sources, 'fix.patch'))}`,
      'pre-configure = echo pre-configure in $(basename $(pwd))',
      'post-install = echo %(prefix)s > %(location)s/post.txt',
    ]);
    const location = join(dir, 'parts', 'hello');
    assert.equal(run(join(location, 'bin/hello')), 'Bonjour sweet:/usr/bin:/bin:/usr/sbin:/sbin\npatched\n');
    assert.equal(readFileSync(join(location, 'extra.txt'), 'utf8'), 'from-make-options\n');
    assert.equal(readFileSync(join(location, 'post.txt'), 'utf8'), `${location}\n`);
    // Built elsewhere: the location holds only what make install and post-install put there.
    assert.deepEqual(readdirSync(location).sort(), ['bin', 'extra.txt', 'post.txt']);
    assert.ok(log.includes(`configure: prefix is ${location}`), log.join('\n'));
    assert.ok(log.includes('pre-configure in source'));
  });

  it('builds a source folder in a copy, leaving the folder as it was', async () => {
    const before = readdirSync(join(sources, 'hello-1.0')).sort();
    await build(['recipe = hexagonit.recipe.cmmi', `path = ${join(sources, 'hello-1.0')}`, 'prefix = @@LOCATION@@/usr']);
    assert.equal(run(join(dir, 'parts/hello/usr/bin/hello')), 'Hello \n');
    assert.deepEqual(readdirSync(join(sources, 'hello-1.0')).sort(), before);
  });

  it('with a configure-command of its own, passes the prefix to make install', async () => {
    await build([
      'recipe = slapos.recipe.cmmi', `path = ${join(sources, 'hello-1.0')}`,
      'configure-command = ./configure',
    ]);
    assert.ok(existsSync(join(dir, 'parts/hello/bin/hello')));
  });

  it('a failing make leaves no location and records nothing', async () => {
    await assert.rejects(
      build(['recipe = slapos.recipe.cmmi', `url = ${archive}`, 'make-targets = install broken']),
      (error: InstallError) => /\[hello\] install failed: command failed \(exit status 2\): make\s+install broken/.test(error.message) && /about to fail/.test(error.message),
    );
    assert.ok(!existsSync(join(dir, 'parts/hello')));
    assert.ok(!existsSync(join(dir, '.installed.cfg')) || !readFileSync(join(dir, '.installed.cfg'), 'utf8').includes('[hello]'));
  });

  it('a checksum mismatch names the URL and both hashes, and leaves nothing', async () => {
    const wrong = '0'.repeat(32);
    await assert.rejects(
      build(['recipe = slapos.recipe.cmmi', `url = ${archive}`, `md5sum = ${wrong}`]),
      (error: Error) => error.message.includes(archive) && error.message.includes(wrong) && error.message.includes(md5(archive)),
    );
    assert.ok(!existsSync(join(dir, 'parts/hello')));
  });

  it('refuses downloads offline, and downloads without a checksum when frozen', async () => {
    const url = 'http://127.0.0.1:9/hello-1.0.tar.gz';
    await assert.rejects(build(['recipe = slapos.recipe.cmmi', `url = ${url}#${'1'.repeat(32)}`], ['offline = true']), /offline mode/);
    await assert.rejects(build(['recipe = slapos.recipe.cmmi', `url = ${url}`], ['frozen = true']), /without a checksum/);
    assert.ok(!existsSync(join(dir, 'parts/hello')));
  });

  it('refuses a section with neither url nor path, naming it', async () => {
    await assert.rejects(build(['recipe = slapos.recipe.cmmi']), (e: Error) => e instanceof InstallError && /\[hello\] needs either url or path/.test(e.message));
  });
});
