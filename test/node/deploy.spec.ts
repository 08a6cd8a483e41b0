import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { install } from '../../engine/install/installer.js';
import { deployInstance, DeployError, instanceProfile, ProfileNotFoundError, type DeployInit } from '../../node/deploy.js';
import { PartitionSocket, type PartitionParameters } from '../../node/partition-socket.js';
import { removeTree, writeTree } from '../helpers/files.js';
import { recordingLogger } from '../helpers/nodes.js';

const HELLO = fileURLToPath(new URL('../../../examples/hello/software.cfg', import.meta.url));

const hang = (command: string) => `[buildout]
parts = hang
[hang]
recipe = plone.recipe.command
stop-on-error = true
command = ${command}
`;

describe('node/deploy: running an instance profile in a partition', function () {
  this.timeout(60_000);
  let root: string;
  const lines: string[] = [];
  const deploy = (folder: string, softwareRoot: string, extra: Partial<DeployInit> = {}) => deployInstance({
    folder, partitionId: 1, softwareRoot, requestedState: 'started', computerId: 'peer-host', releaseCid: 'bafyhello', token: 'secret',
    socketPath: join(folder, '.slapmesh', 'slap.sock'), signal: new AbortController().signal, log: recordingLogger(lines), ...extra,
  });

  const logOf = (folder: string) => join(folder, '.slapmesh', 'log', 'buildout.log');
  before(() => {
    root = writeTree({});
  });
  after(() => removeTree(root));

  describe('the hello release', () => {
    let software: string;
    before(async () => {
      software = join(root, 'hello-software');
      await install({ configFile: HELLO, assignments: [{ section: 'buildout', option: 'directory', value: software }] });
    });

    /** The hello instance's parameters for a port, and a partition socket answering with them; what it was sent. */
    function helloPartition(folder: string, name: string, port: number) {
      const parameters: PartitionParameters = {
        parameters: { name, port: String(port) }, softwareType: 'default', partitionId: 'slappart1', computerId: 'peer-host',
        instanceTitle: 'hello', rootInstanceTitle: 'hello', ipv4: ['127.0.0.1'], ipv6: [], ports: [port],
      };
      const seen = { asked: 0, published: [] as Record<string, string>[] };
      const socket = new PartitionSocket({
        path: join(folder, '.slapmesh', 'slap.sock'), token: 'secret', log: recordingLogger(lines),
        backend: {
          parameters: () => {
            seen.asked++;
            return parameters;
          },
          publish: async (connection) => void seen.published.push(connection),
          request: async () => ({ ready: false, connection: {}, status: 'deploying' }),
        },
      });
      return { parameters, socket, seen };
    }

    it('runs instance.cfg with [slap-connection]: parameters come from the partition socket, the URL is published', async () => {
      const folder = join(root, 'p1');
      const { socket, seen } = helloPartition(folder, 'World', 18080);
      await socket.start();
      try {
        const result = await deploy(folder, software);
        assert.deepEqual(result, {
          ok: true, profile: join(software, 'instance.cfg'), config: join(folder, 'buildout.cfg'), logFile: join(folder, '.slapmesh', 'log', 'buildout.log'),
        });
      } finally {
        await socket.stop();
      }
      assert.equal(seen.asked, 1);
      assert.deepEqual(seen.published, [{ name: 'World', url: 'http://127.0.0.1:18080/' }]);
      assert.match(readFileSync(join(folder, 'etc/service/hello'), 'utf8'), /--host 127\.0\.0\.1 --port 18080 --name World/);
      assert.ok(statSync(join(folder, 'etc/plugin/hello')).isFile());

      const config = readFileSync(join(folder, 'buildout.cfg'), 'utf8');
      assert.ok(config.includes(`[buildout]\nextends = ${join(software, 'instance.cfg')}\ndirectory = ${folder}\n`), config);
      assert.ok(config.includes(`[slap-connection]\ncomputer-id = peer-host\npartition-id = slappart1\nsoftware-release-url = bafyhello\nserver-url = unix:${socket.path}\npartition-token = secret\nrequested-state = started\n`), config);
      assert.ok(config.includes(`[slap_connection]\ncomputer_id = peer-host\npartition_id = slappart1\n`), config);
      for (const file of ['buildout.cfg', '.slapmesh/key.pem', '.slapmesh/cert.pem']) assert.equal(statSync(join(folder, file)).mode & 0o777, 0o600, file);
      assert.match(readFileSync(logOf(folder), 'utf8'), /slappart1: software type default, .*instance\.cfg/);
    });

    it('parameters given with the deployment are not asked for again; the URL is still published through the socket', async () => {
      const folder = join(root, 'p2');
      const { parameters, socket, seen } = helloPartition(folder, 'Asked', 18081);
      await socket.start();
      try {
        await deploy(folder, software, { parameters: { ...parameters, parameters: { name: 'Given', port: '18081' } } });
      } finally {
        await socket.stop();
      }
      assert.equal(seen.asked, 0);
      assert.deepEqual(seen.published, [{ name: 'Given', url: 'http://127.0.0.1:18081/' }]);
    });
  });

  it('picks instance-<type>.cfg when the release has it, else instance.cfg, else names both', async () => {
    const software = writeTree({
      'instance.cfg': '[buildout]\nparts = chosen\n[chosen]\nrecipe = slapos.recipe.template\ninline = plain\noutput = ${buildout:directory}/chosen\n',
      'instance-special.cfg': '[buildout]\nparts = chosen\n[chosen]\nrecipe = slapos.recipe.template\ninline = special\noutput = ${buildout:directory}/chosen\n',
    });
    try {
      assert.equal((await deploy(join(root, 'special'), software, { type: 'special' })).profile, join(software, 'instance-special.cfg'));
      assert.equal(readFileSync(join(root, 'special', 'chosen'), 'utf8'), 'special');
      assert.equal((await deploy(join(root, 'plain'), software)).profile, join(software, 'instance.cfg'));
      assert.equal(readFileSync(join(root, 'plain', 'chosen'), 'utf8'), 'plain');
      assert.equal(instanceProfile(software, '../x'), join(software, 'instance.cfg'));
      await assert.rejects(deploy(join(root, 'none'), join(software, 'missing'), { type: 'other' }), (error: unknown) =>
        error instanceof ProfileNotFoundError && error.message.includes('instance-other.cfg') && error.message.includes(join(software, 'missing', 'instance.cfg')));
    } finally {
      removeTree(software);
    }
  });

  it('a failing profile: DeployError with the end of the buildout\'s output, which is in the log', async () => {
    const software = writeTree({ 'instance.cfg': hang('echo the disk is full >&2; exit 3') });
    const folder = join(root, 'failing');
    try {
      await assert.rejects(deploy(folder, software), (error: unknown) => {
        assert.ok(error instanceof DeployError, String(error));
        assert.equal(error.reason, 'failed');
        assert.match(error.message, /\[hang\] install failed: command failed \(exit status 3\)/);
        assert.match(error.message, /the disk is full/);
        assert.doesNotMatch(error.message, /Installing hang\./);
        return true;
      });
      assert.match(readFileSync(logOf(folder), 'utf8'), /Installing hang\.\n[^]*the disk is full/);
    } finally {
      removeTree(software);
    }
  });

  it('abort stops the buildout and what it runs; a deployment that takes too long is stopped too', async () => {
    // The command says it runs through a FIFO (its open waits for this test to read), then hangs.
    const software = writeTree({ 'instance.cfg': hang('echo $$ > ${buildout:directory}/running; exec sleep 600') });
    const folder = join(root, 'aborted');
    try {
      mkdirSync(folder);
      execFileSync('mkfifo', [join(folder, 'running')]);
      const controller = new AbortController();
      const deploying = deploy(folder, software, { signal: controller.signal });
      const pid = Number(await readFile(join(folder, 'running'), 'utf8'));
      assert.ok(pid > 0);
      controller.abort(new Error('the instance is being destroyed'));
      await assert.rejects(deploying, (error: unknown) =>
        error instanceof DeployError && error.reason === 'aborted' && error.message.startsWith('deployment stopped: the instance is being destroyed'));
      assert.throws(() => process.kill(pid, 0), /ESRCH/);

      // Nobody reads the FIFO this time: the command never gets past it.
      await assert.rejects(deploy(folder, software, { timeoutMs: 1_000 }), (error: unknown) =>
        error instanceof DeployError && error.reason === 'timeout' && error.message.startsWith('the instance profile did not finish within 1 s'));
    } finally {
      removeTree(software);
    }
  });
});
