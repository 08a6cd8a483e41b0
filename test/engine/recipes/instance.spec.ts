import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { install } from '../../../engine/install/installer.js';
import { removeTree, writeTree } from '../../helpers/files.js';

/** Runs a promise script: its exit status and its output. */
function runPromise(path: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(path, { encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr });
    });
  });
}

describe('engine/recipes: slapconfiguration, publish, promise.plugin (standalone)', () => {
  let dir: string;
  beforeEach(() => {
    dir = writeTree({});
  });
  afterEach(() => removeTree(dir));

  async function build(config: string, files: Record<string, string> = {}): Promise<void> {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    writeFileSync(join(dir, 'buildout.cfg'), config);
    await install({ configFile: join(dir, 'buildout.cfg') });
  }
  const connection = () => JSON.parse(readFileSync(join(dir, 'connection.json'), 'utf8')) as Record<string, string>;

  it('reads the parameters file and publishes what the instance computes from it', async () => {
    await build([
      '[buildout]', 'parts = publish',
      '[slap-configuration]', 'recipe = slapos.cookbook:slapconfiguration', 'parameters-file = parameters.json',
      'configuration.name = John Doe', 'configuration.colour = blue',
      '[publish]', 'recipe = slapos.cookbook:publish',
      'name = Hello ${slap-configuration:configuration.name}!', 'colour = ${slap-configuration:configuration.colour}',
      'url = http://[${slap-configuration:ipv6-random}]:8080', 'v4 = ${slap-configuration:ipv4-random}',
      'type = ${slap-configuration:slap-software-type}', 'size = ${slap-configuration:configuration.size}',
      '-private = not published', '',
    ].join('\n'), { 'parameters.json': JSON.stringify({ name: 'World', size: 3, slap_software_type: 'small' }) });
    assert.deepEqual(connection(), {
      colour: 'blue', name: 'Hello World!', size: '3', type: 'small', url: 'http://[::1]:8080', v4: '127.0.0.1',
    });
  });

  it('serialised: unwraps parameters given as {"_": JSON}, and publishes to -connection-file with -extends', async () => {
    await build([
      '[buildout]', 'parts = publish',
      '[conf]', 'recipe = slapos.cookbook:slapconfiguration.serialised', 'parameters-file = p.json',
      '[more]', 'extra = ${conf:configuration.list}',
      '[publish]', 'recipe = slapos.cookbook:publish.serialised', '-extends = more', '-connection-file = out/c.json',
      'all = ${conf:configuration}', '',
    ].join('\n'), { 'p.json': JSON.stringify({ _: JSON.stringify({ list: [1, 2] }) }) });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'out/c.json'), 'utf8')), { all: '{"list":[1,2]}', extra: '[1,2]' });
  });

  it('refuses to run against a node for now, and a parameters file that is not a JSON object', async () => {
    const profile = (extra: string) => `[buildout]\nparts = conf\n[conf]\nrecipe = slapos.cookbook:slapconfiguration\n${extra}\n`;
    await assert.rejects(build(profile('url = http://10.0.0.1/')), /\[conf\] asking a node for the parameters \(server-url http:\/\/10\.0\.0\.1\/\) is not implemented yet/);
    await assert.rejects(build(profile('parameters-file = p.json'), { 'p.json': '[1]' }), /\[conf\] parameters-file .*p\.json must hold a JSON object/);
  });

  describe('promise.plugin', () => {
    let server: Server;
    let port: number;
    before(async () => {
      server = createServer((request, response) => response.writeHead(request.url === '/' ? 200 : 404).end('hi\n'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const promise = (name: string, module: string, config: string[]) => [
      `[${name}]`, 'recipe = slapos.cookbook:promise.plugin', `module = slapos.promise.plugin.${module}`,
      `output = \${buildout:directory}/etc/plugin/${name}.py`, ...config,
    ].join('\n');

    it('writes executable checks that pass against a listening server and fail with one line otherwise', async () => {
      await build([
        '[buildout]', 'parts = url port missing wrong-code',
        promise('url', 'check_url_available', [`config-url = http://127.0.0.1:${port}/`]),
        promise('port', 'check_socket_listening', ['config-host = 127.0.0.1', `config-port = ${port}`]),
        promise('missing', 'check_url_available', [`config-url = http://127.0.0.1:${port}/nothing`]),
        promise('wrong-code', 'check_url_available', [`config-url = http://127.0.0.1:${port}/nothing`, 'config-http-code = 404']),
        '',
      ].join('\n'));
      assert.equal(statSync(join(dir, 'etc/plugin/url.py')).mode & 0o111, 0o111);
      assert.deepEqual(await runPromise(join(dir, 'etc/plugin/url.py')), { code: 0, output: `http://127.0.0.1:${port}/ answered 200\n` });
      assert.deepEqual(await runPromise(join(dir, 'etc/plugin/port.py')), { code: 0, output: `127.0.0.1:${port} is listening\n` });
      assert.deepEqual(await runPromise(join(dir, 'etc/plugin/missing.py')), { code: 1, output: `Error: http://127.0.0.1:${port}/nothing answered 404, expected 200\n` });
      assert.equal((await runPromise(join(dir, 'etc/plugin/wrong-code.py'))).code, 0);

      await new Promise<void>((resolve) => server.close(() => resolve()));
      const down = await runPromise(join(dir, 'etc/plugin/url.py'));
      assert.equal(down.code, 1);
      assert.match(down.output, new RegExp(`^Error: http://127\\.0\\.0\\.1:${port}/ cannot be reached: .*ECONNREFUSED.*\n$`));
      const closed = await runPromise(join(dir, 'etc/plugin/port.py'));
      assert.equal(closed.code, 1);
      assert.match(closed.output, new RegExp(`^Error: nothing listening on 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*\n$`));
      server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });

    it('runs check_command_execute, and refuses checks it does not know', async () => {
      await build(['[buildout]', 'parts = ok fails', promise('ok', 'check_command_execute', ['config-command = echo fine']),
        promise('fails', 'check_command_execute', ['config-command = echo broken >&2; exit 3']), ''].join('\n'));
      assert.deepEqual(await runPromise(join(dir, 'etc/plugin/ok.py')), { code: 0, output: 'fine\n' });
      assert.deepEqual(await runPromise(join(dir, 'etc/plugin/fails.py')), { code: 1, output: 'Error: echo broken >&2; exit 3 failed (exit 3): broken\n' });
      await assert.rejects(build(['[buildout]', 'parts = odd', promise('odd', 'check_free_disk_space', []), ''].join('\n')),
        /\[odd\] promise slapos\.promise\.plugin\.check_free_disk_space is not supported by slapmesh/);
    });
  });
});
