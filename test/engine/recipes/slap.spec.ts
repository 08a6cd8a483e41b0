// The instance recipes in a node's partition: slapconfiguration, publish and request ask the node through
// the partition socket. The buildout runs in a child process, as the node runs it: recipe init waits for
// the socket synchronously, and the socket is served by this process.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callSlapSync, primeSlapAnswers } from '../../../engine/recipes/slap-client.js';
import { PartitionSocket, type ChildAnswer, type ChildRequest, type PartitionParameters } from '../../../node/partition-socket.js';
import { removeTree, writeTree } from '../../helpers/files.js';
import { recordingLogger } from '../../helpers/nodes.js';

const INSTALLER = new URL('../../../engine/install/installer.js', import.meta.url).href;

/** The engine's install() in a child process (as `slapmesh buildout install` runs it): its exit status and error. */
function installInChild(config: string): Promise<{ code: number; stderr: string }> {
  const script = `import { install } from ${JSON.stringify(INSTALLER)};
try { await install({ configFile: ${JSON.stringify(config)} }); } catch (error) { process.stderr.write(error.message + '\\n'); process.exitCode = 1; }`;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }, (error, _stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stderr }));
  });
}

describe('engine/recipes in node mode (server-url unix:<partition socket>)', function () {
  this.timeout(60_000);
  let dir: string;
  let socket: PartitionSocket;
  let parameters: PartitionParameters;
  let published: Record<string, string>[];
  let requested: ChildRequest[];
  let answer: (child: ChildRequest) => ChildAnswer;

  beforeEach(async () => {
    dir = writeTree({});
    parameters = {
      parameters: { name: 'World', size: '3' }, softwareType: 'small', partitionId: 'slappart4', computerId: 'peer-1',
      instanceTitle: 'hello', rootInstanceTitle: 'tree', ipv4: ['127.0.0.9', '127.0.0.4'], ipv6: [], ports: [30010, 30011],
    };
    published = [];
    requested = [];
    answer = () => ({ ready: false, connection: {}, status: 'deploying' });
    socket = new PartitionSocket({
      path: join(dir, '.slapmesh', 'slap.sock'), token: 'secret', log: recordingLogger([]),
      backend: {
        parameters: () => parameters,
        publish: async (connection) => void published.push(connection),
        request: async (child) => {
          requested.push(child);
          return answer(child);
        },
      },
    });
    await socket.start();
  });
  afterEach(async () => {
    await socket.stop();
    removeTree(dir);
  });

  /** `[slap-connection]` as the node writes it, then the profile. */
  const profile = (body: string, extra = '') => `[slap-connection]
computer-id = peer-1
partition-id = slappart4
software-release-url = bafyrelease
server-url = unix:${socket.path}
partition-token = secret
requested-state = started
${extra}
${body}`;

  async function buildout(text: string): Promise<{ code: number; stderr: string }> {
    writeFileSync(join(dir, 'buildout.cfg'), text);
    return installInChild(join(dir, 'buildout.cfg'));
  }
  async function succeeds(text: string): Promise<void> {
    const { code, stderr } = await buildout(text);
    assert.equal(code, 0, stderr);
  }

  describe('slapconfiguration and publish', () => {
    it('sets the options SlapOS sets from the node\'s parameters (they win over the section\'s), and publishes to the node', async () => {
      await succeeds(profile(`[buildout]
parts = publish

[conf]
recipe = slapos.cookbook:slapconfiguration
configuration.name = John Doe
configuration.colour = blue

[publish]
recipe = slapos.cookbook:publish
name = Hello \${conf:configuration.name}!
colour = \${conf:configuration.colour}
size = \${conf:configuration.size}
type = \${conf:slap-software-type}
ipv4 = \${conf:ipv4}
v4 = \${conf:ipv4-random}
ports = \${conf:port-list}
ids = \${conf:slap-computer-id} \${conf:slap-computer-partition-id} \${conf:slap-software-release-url}
titles = \${conf:instance-title} \${conf:root-instance-title} \${conf:root-instance-short-title} \${conf:instance-state}
all = \${conf:configuration}
slaves = \${conf:slave-instance-list}
-private = not published
`));
      assert.deepEqual(published, [{
        all: '{"name":"World","size":"3"}', colour: 'blue', ids: 'peer-1 slappart4 bafyrelease', ipv4: '127.0.0.4\n127.0.0.9',
        name: 'Hello World!', ports: '30010\n30011', size: '3', slaves: '[]', titles: 'hello tree tree started', type: 'small', v4: '127.0.0.4',
      }]);
      assert.ok(!existsSync(join(dir, 'connection.json')), 'nothing is written standalone-style');
    });

    it('serialised: unwraps the parameters under "_" and publishes {"_": JSON}, on every run', async () => {
      parameters = { ...parameters, parameters: { _: JSON.stringify({ list: [1, 2], name: 'World' }) } };
      const text = profile(`[buildout]
parts = publish

[conf]
recipe = slapos.cookbook:slapconfiguration.serialised

[publish]
recipe = slapos.cookbook:publish.serialised
name = \${conf:configuration.name}
list = \${conf:configuration.list}
`);
      await succeeds(text);
      await succeeds(text);
      const expected = { _: '{"list": "[1,2]", "name": "World"}' };
      assert.deepEqual(published, [expected, expected]);
    });

    it('fails with the node\'s refusal when the token is wrong, and says what is missing without a token', async () => {
      const body = '[buildout]\nparts = conf\n[conf]\nrecipe = slapos.cookbook:slapconfiguration\n';
      const wrong = await buildout(profile(body).replace('partition-token = secret', 'partition-token = guess'));
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /\[conf\] asking a node for the parameters: the node refused \(UnauthorizedError\): wrong or missing partition token/);
      const none = await buildout(profile(body).replace('partition-token = secret', ''));
      assert.match(none.stderr, /\[conf\] asking a node for the parameters needs partition-token in \[slap-connection\]/);
    });
  });

  describe('request', () => {
    const SHOW = '${child:connection-url} ${child:connection-password} ${child:requested-state} ${child:instance-state}';
    const requestProfile = (recipe: string, options = '', inline = SHOW) => profile(`[buildout]
parts = show

[child]
recipe = slapos.cookbook:${recipe}
name = database
software-url = bafychild
software-type = mariadb
config-size = 3
config-engine = innodb
return = url password
${options}

[show]
recipe = slapos.recipe.template
inline = ${inline}
output = \${buildout:directory}/show
`);
    const show = () => readFileSync(join(dir, 'show'), 'utf8');

    it('asks the node for the child and sets connection-<key> from its answer', async () => {
      answer = () => ({ ready: true, connection: { url: 'http://db/', password: 'pw', other: 'x' }, status: 'ready' });
      await succeeds(requestProfile('request'));
      assert.equal(show(), 'http://db/ pw started started');
      assert.deepEqual(requested, [{ name: 'database', release: 'bafychild', type: 'mariadb', parameters: { engine: 'innodb', size: '3' }, state: 'started' }]);
    });

    it('request: not ready fails the run with SlapOS\'s message, and the next run completes', async () => {
      const first = await buildout(requestProfile('request'));
      assert.equal(first.code, 1);
      assert.match(first.stderr, /\[child\] Connection parameter url not found\. Status of requested instance is: deploying\. If this error persists, check status of this instance\./);
      assert.ok(!existsSync(join(dir, 'show')), 'what uses the child waits for it');

      // The node runs the buildout again once the child published.
      answer = () => ({ ready: true, connection: { url: 'http://db/', password: 'pw' }, status: 'ready' });
      await succeeds(requestProfile('request'));
      assert.equal(show(), 'http://db/ pw started started');
      assert.equal(requested.length, 2);
    });

    it('requestoptional: placeholders while not ready, the values once ready', async () => {
      answer = () => ({ ready: false, connection: { url: 'http://db/' }, status: 'deploying' });
      await succeeds(requestProfile('requestoptional'));
      assert.equal(show(), 'http://db/  started started');
      answer = () => ({ ready: true, connection: { url: 'http://db/', password: 'pw' }, status: 'ready' });
      await succeeds(requestProfile('requestoptional'));
      assert.equal(show(), 'http://db/ pw started started');
    });

    it('a refusal fails request at install (requestoptional goes on); state, shared and the parent\'s stopped state are passed', async () => {
      answer = () => {
        throw Object.assign(new Error('no peer can host bafychild'), { name: 'PlacementError' });
      };
      const refused = await buildout(requestProfile('request'));
      assert.match(refused.stderr, /\[child\] the request of database failed: no peer can host bafychild \(PlacementError\)/);
      // A shared instance has no state of its own (SlapOS sets instance-state only for the others).
      await succeeds(requestProfile('requestoptional', 'shared = true\nstate = destroyed', '[${child:connection-url}] ${child:requested-state}'));
      assert.equal(show(), '[] destroyed');
      assert.deepEqual(requested.map((r) => [r.state, r.shared]), [['started', undefined], ['destroyed', true]]);

      requested = [];
      await succeeds(requestProfile('requestoptional').replace('requested-state = started', 'requested-state = stopped'));
      assert.deepEqual(requested.map((r) => r.state), ['stopped']);
    });

    it('request.serialised sends the config as JSON under "_" and reads the connection from it', async () => {
      answer = () => ({ ready: true, connection: { _: JSON.stringify({ url: 'http://db/', password: 'pw' }) }, status: 'ready' });
      await succeeds(requestProfile('request.serialised'));
      assert.equal(show(), 'http://db/ pw started started');
      assert.deepEqual(requested[0]!.parameters, { _: '{"engine": "innodb", "size": "3"}' });
    });
  });
});

describe('engine/recipes/slap-client: answers primed by the node', () => {
  it('are returned for their socket, token and method without asking, and asked for again once undone', () => {
    const endpoint = { socket: join(tmpdir(), 'slapmesh-no-such-socket', 'slap.sock'), token: 'secret' };
    const result = { partitionId: 'slappart1' };
    const undo = primeSlapAnswers([{ ...endpoint, method: 'parameters', result }]);
    try {
      assert.deepEqual(callSlapSync(endpoint, 'parameters', {}), result);
      // Another token, another method, or parameters: asked, and no node listens there.
      assert.throws(() => callSlapSync({ ...endpoint, token: 'other' }, 'parameters', {}, 1_000), { name: 'SlapUnreachableError' });
      assert.throws(() => callSlapSync(endpoint, 'publish', {}, 1_000), { name: 'SlapUnreachableError' });
      assert.throws(() => callSlapSync(endpoint, 'parameters', { more: 1 }, 1_000), { name: 'SlapUnreachableError' });
    } finally {
      undo();
    }
    assert.throws(() => callSlapSync(endpoint, 'parameters', {}, 1_000), { name: 'SlapUnreachableError' });
  });
});
