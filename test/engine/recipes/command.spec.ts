import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { install, InstallError, type InstallEvent, type InstallReport } from '../../../engine/install/installer.js';
import { removeTree, writeTree } from '../../helpers/files.js';

describe('engine/recipes plone.recipe.command', () => {
  let dir: string;
  let events: InstallEvent[];
  const run = (text?: string): Promise<InstallReport> => {
    if (text !== undefined) writeFileSync(join(dir, 'buildout.cfg'), text);
    events = [];
    return install({ configFile: 'buildout.cfg', cwd: dir, onEvent: (e) => events.push(e) });
  };
  const read = (path: string) => readFileSync(join(dir, path), 'utf8');
  const profile = (options: string) => `[buildout]
parts = cmd

[cmd]
recipe = plone.recipe.command
${options}
`;

  beforeEach(() => {
    dir = writeTree({});
  });
  afterEach(() => removeTree(dir));

  it('runs command on install and update-command on update, in the buildout directory', async () => {
    const options = 'command = echo installed >> log\nupdate-command = echo updated >> log';
    await run(profile(options));
    assert.equal(read('log'), 'installed\n');
    const report = await run();
    assert.deepEqual(report.updated, ['cmd']);
    assert.equal(read('log'), 'installed\nupdated\n');
  });

  it('owns the location paths the command made: they go with the part', async () => {
    await run(profile('command = mkdir -p made && touch made/file\nlocation = ${buildout:directory}/made'));
    assert.ok(existsSync(join(dir, 'made/file')));
    await run('[buildout]\nparts =\n');
    assert.ok(!existsSync(join(dir, 'made')));
  });

  it('logs a failing command and goes on when stop-on-error is off (the default)', async () => {
    const report = await run(profile('command = echo about to fail; exit 3'));
    assert.deepEqual(report.installed, ['cmd']);
    const lines = events.flatMap((e) => (e.type === 'log' ? [e.line] : []));
    assert.ok(lines.includes('about to fail'));
    assert.ok(lines.some((l) => /exit status 3.*ignored: stop-on-error is off/.test(l)), lines.join('\n'));
  });

  it('fails the part when stop-on-error is on', async () => {
    await assert.rejects(run(profile('command = echo broken; exit 3\nstop-on-error = true')), (error: unknown) =>
      error instanceof InstallError && error.part === 'cmd' && /exit status 3/.test(error.message) && /broken/.test(error.message));
    assert.ok(!existsSync(join(dir, '.installed.cfg')) || !readFileSync(join(dir, '.installed.cfg'), 'utf8').includes('[cmd]'));
  });
});
