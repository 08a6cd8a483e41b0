// slapos.cookbook's instance recipes that need no node: wrapper, mkdirectory, free_port,
// generate.password and switch-softwaretype; and request, which asks the node through the partition
// socket (design.md §7) and, standalone, only lets profiles holding it resolve. Behaviour follows
// slapos/recipe/*.py in SlapOS.
import { spawnSync } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, statSync, mkdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, sep } from 'node:path';
import type { Assignment } from '../config/configuration.js';
import { MissingSectionError } from '../config/errors.js';
import { readInstalled } from '../install/installed.js';
import { install, type InstallEvent } from '../install/installer.js';
import { registerRecipe, RecipeError, type PartContext, type PartOptions, type Recipe, type RecipeInit } from '../install/recipe.js';
import { pyJson } from './jinja2.js';
import { callSlapSync, connectionOption, nodeEndpoint, SlapCallError, slapFailure } from './slap-client.js';
import { octalMode, partPath, writeFileIfChanged } from './template.js';

const TRUE_VALUES = ['y', 'yes', '1', 'true'];

const words = (value: string | undefined): string[] => (value ?? '').split(/\s+/).filter(Boolean);

function required(part: RecipeInit, option: string): string {
  const value = part.options.get(option);
  if (!value?.trim()) throw new RecipeError(`[${part.name}] needs the option ${option}`);
  return value;
}

/** A section's options, or undefined when the configuration has no such section. */
function sectionIfAny(part: RecipeInit, name: string): PartOptions | undefined {
  try {
    return part.section(name);
  } catch (error) {
    if (error instanceof MissingSectionError) return undefined;
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// wrapper

/** Python's shlex.quote. */
export function shellQuote(word: string): string {
  if (word === '') return "''";
  return /[^A-Za-z0-9_@%+=:,./-]/.test(word) ? `'${word.replaceAll("'", `'"'"'`)}'` : word;
}

/** Python's shlex.split (POSIX rules, no comments). */
export function shellSplit(text: string): string[] {
  const out: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < text.length;) {
    const c = text[i]!;
    if (' \t\r\n'.includes(c)) {
      if (word !== undefined) out.push(word);
      word = undefined;
      i++;
      continue;
    }
    word ??= '';
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error('No closing quotation');
      word += text.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      for (i++; ; i++) {
        if (i >= text.length) throw new Error('No closing quotation');
        if (text[i] === '"') break;
        if (text[i] === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) i++;
        word += text[i];
      }
      i++;
    } else if (c === '\\') {
      if (i + 1 >= text.length) throw new Error('No escaped character');
      word += text[i + 1];
      i += 2;
    } else {
      word += c;
      i++;
    }
  }
  if (word !== undefined) out.push(word);
  return out;
}

/** slapos.recipe.librecipe's generateHashFromFiles: md5 over each file's length and content. */
function filesHash(part: RecipeInit, paths: readonly string[]): string {
  const hash = createHash('md5');
  for (const path of paths) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(partPath(part, path));
    } catch (error) {
      throw new RecipeError(`[${part.name}] cannot hash ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    hash.update(`${bytes.length}\n`).update(bytes);
  }
  return hash.digest('hex');
}

/**
 * The wrapper's path: `wrapper-path`, suffixed with a hash of the hashed files, so that a change in
 * them gives a new program name (and the supervisor restarts the service), as SlapOS does.
 */
function wrapperPath(part: RecipeInit): string {
  const path = partPath(part, required(part, 'wrapper-path'));
  const hashed = [...words(part.options.get('hash-files')), ...words(part.options.get('hash-existing-files'))];
  return hashed.length ? `${path}-${filesHash(part, hashed)}` : path;
}

function environmentOf(part: RecipeInit): Map<string, string> {
  const environment = new Map<string, string>();
  for (const raw of (part.options.get('environment') ?? '').split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new RecipeError(`[${part.name}] environment: "${line}" is not NAME=VALUE`);
    environment.set(line.slice(0, eq).trimEnd(), line.slice(eq + 1).trimStart());
  }
  return environment;
}

/**
 * The script: `#!/bin/sh -e`, the environment exported, then `exec` of the command and its
 * arguments, laid out as slapos.recipe.librecipe's createWrapper does. Where SlapOS switches to a
 * Python launcher (wait-for-files, pidfile, redirections), the shell does the same work here.
 */
function wrapperScript(part: PartContext): string {
  let args: string[];
  try {
    args = shellSplit(required(part, 'command-line'));
  } catch (error) {
    throw new RecipeError(`[${part.name}] command-line: ${(error as Error).message}`);
  }
  if (!args.length) throw new RecipeError(`[${part.name}] command-line is empty`);
  const lines = ['#!/bin/sh -e'];
  for (const [key, value] of [...environmentOf(part)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    lines.push(`export ${key}=${shellQuote(value)}`);
  }
  for (const file of words(part.options.get('wait-for-files'))) {
    const quoted = shellQuote(file);
    lines.push(`until [ -e ${quoted} ] || [ -L ${quoted} ]; do sleep 0.1; done`);
  }
  const pidfile = part.options.get('pidfile')?.trim();
  if (pidfile) {
    // Not started twice: a live process whose command line holds this command has the pidfile.
    const pid = shellQuote(partPath(part, pidfile));
    lines.push(
      `if [ -s ${pid} ] && pid=$(cat ${pid}) && kill -0 "$pid" 2>/dev/null && tr '\\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- ${shellQuote(args[0]!)}; then`,
      '  echo "Already running with pid $pid."',
      '  exit 0',
      'fi',
      `echo $$ >${pid}`,
    );
  }
  for (const option of ['private-tmpfs', 'reserve-cpu', 'redirect-signal']) {
    if (part.options.get(option)?.trim()) part.log(`${option} is not supported by slapmesh: ignored`);
  }
  lines.push('exec');
  const stdout = part.options.get('redirect-stdout')?.trim();
  const stderr = part.options.get('redirect-stderr')?.trim();
  const redirections = [
    ...(stdout ? [`>>${shellQuote(partPath(part, stdout))}`] : []),
    ...(stderr ? [stderr === stdout ? '2>&1' : `2>>${shellQuote(partPath(part, stderr))}`] : []),
  ];
  for (const word of [...args.map(shellQuote), '"$@"', ...redirections]) {
    if (lines[lines.length - 1]!.length < 40) lines[lines.length - 1] += ` ${word}`;
    else {
      lines[lines.length - 1] += ' \\';
      lines.push(`\t${word}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

const wrapper: Recipe = {
  init(part) {
    required(part, 'command-line');
    required(part, 'wrapper-path');
    environmentOf(part);
    // Files that exist before the build: their hash is an option, so a change reinstalls the wrapper.
    const existing = words(part.options.get('hash-existing-files'));
    if (existing.length) part.options.set('__hash_files__', filesHash(part, existing));
  },

  async install(part) {
    // hash-files are for files this buildout makes (its parts are rebuilt when they change); a file
    // from elsewhere must be in hash-existing-files, or its changes would go unnoticed.
    const inside = realpathSync(part.buildout.directory) + sep;
    const outside = words(part.options.get('hash-files')).filter((f) => existsSync(partPath(part, f)) && !realpathSync(partPath(part, f)).startsWith(inside));
    if (outside.length) {
      throw new RecipeError(`[${part.name}] hash-files must only list files that are generated by buildout:\n  ${outside.join('\n  ')}`);
    }
    const path = wrapperPath(part);
    writeFileIfChanged(path, wrapperScript(part), 0o700);
    return [path];
  },

  async update(part) {
    const path = wrapperPath(part);
    if (!existsSync(path) || !statSync(path).isFile()) throw new RecipeError(`[${part.name}] unstable wrapper path (${path})`);
  },
};

// ---------------------------------------------------------------------------------------------
// mkdirectory

/** Every option is a folder to create, but recipe and mode (and the options buildout or slapmesh add). */
function folders(part: RecipeInit): string[] {
  return part.options.keys()
    .filter((key) => key !== 'recipe' && key !== 'mode' && key !== 'location' && !key.startsWith('_'))
    .map((key) => part.options.get(key)?.trim() ?? '')
    .filter(Boolean)
    .sort()
    .map((value) => partPath(part, value));
}

const mkdirectory: Recipe = {
  init(part) {
    octalMode(part);
  },
  async install(part) {
    const mode = octalMode(part) ?? 0o777; // less the umask, as os.makedirs does
    for (const path of folders(part)) {
      if (!existsSync(path) || !statSync(path).isDirectory()) mkdirSync(path, { recursive: true, mode });
    }
    // Nothing is returned: these folders hold the instance's data, which uninstalling the part
    // must never delete (SlapOS's mkdirectory does the same).
    return [];
  },
  async update(part) {
    await mkdirectory.install(part);
  },
};

// ---------------------------------------------------------------------------------------------
// free_port

/** Tries ports from min (included) to max (excluded) by listening on them; prints the first free one, or 0. */
const FIND_PORT = `
const net = require('node:net');
const [ip, min, max] = process.argv.slice(1);
const attempt = (port) => {
  if (port >= +max) return console.log(0);
  const server = net.createServer();
  server.once('error', () => attempt(port + 1));
  server.listen({ host: ip, port, exclusive: true }, () => server.close(() => console.log(port)));
};
attempt(+min);
`;

function integer(part: RecipeInit, option: string, fallback: number): number {
  const value = part.options.get(option)?.trim();
  if (!value) return fallback;
  if (!/^[-+]?\d+$/.test(value)) throw new RecipeError(`[${part.name}] ${option} = ${value} is not an integer`);
  return parseInt(value, 10);
}

/** The port this part was installed with, as SlapOS's free_port reads it back from the installed state. */
function installedPort(part: RecipeInit): string | undefined {
  const installed = part.section('buildout').get('installed');
  if (!installed) return undefined;
  try {
    return readInstalled(partPath(part, installed)).get(part.name)?.options['port'];
  } catch {
    return undefined;
  }
}

const freePort: Recipe = {
  init(part) {
    // Once installed, the port is the service's own: picking again would find it taken.
    const previous = installedPort(part);
    if (previous && previous !== '0') return part.options.set('port', previous);
    const minimum = integer(part, 'minimum', 1024);
    const maximum = integer(part, 'maximum', 49151);
    if (minimum === maximum) return part.options.set('port', String(minimum));
    const ip = part.options.get('ip')?.trim() ?? '';
    if (!isIP(ip)) return part.options.set('port', '0'); // an unknown address family: "any port"
    // init is synchronous, and a bind test is not: it runs in a short child process.
    const child = spawnSync(process.execPath, ['-e', FIND_PORT, ip, String(minimum), String(maximum)], { encoding: 'utf8', timeout: 30_000 });
    const port = child.stdout?.trim();
    if (child.status !== 0 || !/^\d+$/.test(port ?? '')) {
      throw new RecipeError(`[${part.name}] cannot look for a free port: ${child.error?.message ?? child.stderr?.trim() ?? `exit status ${child.status}`}`);
    }
    part.options.set('port', port!);
  },
  async install() {
    return [];
  },
  async update() {},
};

// ---------------------------------------------------------------------------------------------
// generate.password

const PASSWORD_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** The stored password: the JSON `{"": password, ...}` SlapOS writes, or an older plain-text file. */
function storedPassword(part: RecipeInit, path: string): string | undefined {
  let content: string;
  try {
    content = readFileSync(path, 'utf8').replace(/^\n+|\n+$/g, '');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RecipeError(`[${part.name}] cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    const parsed: unknown = JSON.parse(content);
    if (parsed && typeof parsed === 'object' && typeof (parsed as Record<string, unknown>)[''] === 'string') {
      return (parsed as Record<string, string>)[''];
    }
  } catch {
    // the old format
  }
  return content;
}

const password: Recipe = {
  init(part) {
    if (!part.options.has('storage-path')) part.options.set('storage-path', join(part.buildout.partsDirectory, part.name));
    const storage = part.options.get('storage-path')?.trim();
    const given = part.options.get('passwd');
    let passwd = storage ? storedPassword(part, partPath(part, storage)) : undefined;
    if (given) passwd = given; // a password given in the profile wins over the stored one
    if (!passwd) {
      const length = integer(part, 'bytes', 16);
      passwd = Array.from({ length }, () => PASSWORD_ALPHABET[randomInt(PASSWORD_ALPHABET.length)]).join('');
    }
    part.options.set('passwd', passwd);
  },

  async install(part) {
    const storage = part.options.get('storage-path')?.trim();
    if (!storage) return []; // kept by other means (e.g. published)
    const path = partPath(part, storage);
    // Stored as SlapOS does (older plain-text files are rewritten so); unchanged files are left alone.
    writeFileIfChanged(path, pyJson({ '': part.options.require('passwd') }, { sortKeys: true }), 0o600);
    // create-once (the default): the file outlives the part, so the password survives a reinstall.
    const createOnce = TRUE_VALUES.includes((part.options.get('create-once') ?? 'True').trim().toLowerCase());
    return createOnce ? [] : [path];
  },

  async update(part) {
    await password.install(part);
  },
};

// ---------------------------------------------------------------------------------------------
// switch-softwaretype

const NOOP_KEY = '-switch-softwaretype.noop';

/** The instance profile for the software type: the `<type>` option names it as section:option. */
function chosenProfile(part: RecipeInit): { type: string; path: string } {
  let type = part.options.get('software-type')?.trim() || sectionIfAny(part, 'slap-configuration')?.get('slap-software-type')?.trim() || 'default';
  let mapping = part.options.get(type);
  if (mapping === undefined && type === 'RootSoftwareInstance') {
    // SlapOS's old name for the default type
    type = 'default';
    mapping = part.options.get(type);
  }
  if (mapping === undefined) throw new RecipeError(`[${part.name}] the software type ${type} is not mapped to a profile ('default' is the default software type)`);
  const [section, option, ...rest] = mapping.trim().split(':');
  if (rest.length || !section || !option) {
    throw new RecipeError(`[${part.name}] ${type} = ${mapping.trim()}: software types map to section:option (usually section:output), not \${section:option}`);
  }
  const path = part.section(section).get(option);
  if (!path) throw new RecipeError(`[${part.name}] ${type} = ${mapping.trim()}: [${section}] has no option ${option}`);
  return { type, path: partPath(part, path) };
}

/** A value given to the nested buildout as an assignment, which substitutes it again. */
const literal = (value: string) => value.replaceAll('${', '$${');

/**
 * Runs the chosen profile as a buildout of its own in the same directory, with its own installed
 * state (`.installed-<part>.cfg`), as SlapOS does: each run installs, updates or uninstalls that
 * profile's parts, so changing the software type replaces them. It records no paths of its own:
 * the nested buildout owns what it installs.
 */
async function runChosenProfile(part: PartContext): Promise<string[]> {
  const { type, path } = chosenProfile(part);
  const directory = part.buildout.directory;
  const buildout = part.section('buildout');
  const assignments: Assignment[] = [{ section: 'buildout', option: 'installed', value: literal(join(directory, `.installed-${part.name}.cfg`)) }];
  for (const option of ['directory', 'offline', 'eggs-directory', 'develop-eggs-directory']) {
    const value = buildout.get(option);
    if (value !== undefined) assignments.push({ section: 'buildout', option, value: literal(value) });
  }
  const connection = sectionIfAny(part, 'slap-connection');
  for (const option of connection?.keys() ?? []) {
    if (!option.startsWith('_')) assignments.push({ section: 'slap-connection', option, value: literal(connection!.get(option) ?? '') });
  }
  // The nested [slap-configuration] takes this one's values instead of asking again.
  const configuration = sectionIfAny(part, 'slap-configuration');
  if (configuration) {
    const values = Object.fromEntries(configuration.keys().filter((k) => k !== 'recipe').map((k) => [k, configuration.get(k) ?? '']));
    assignments.push(
      { section: 'slap-configuration', option: 'recipe', value: 'slapos.cookbook:switch-softwaretype.noop' },
      { section: 'slap-configuration', option: NOOP_KEY, value: Buffer.from(JSON.stringify(values)).toString('base64') },
    );
  }
  part.log(`software type ${type}: running ${path}`);
  const onEvent = (event: InstallEvent) => {
    if (event.type === 'log') part.log(`  [${event.part}] ${event.line}`);
    else if (event.type !== 'done' && event.type !== 'failed') part.log(`${event.type} ${event.part}`);
  };
  try {
    await install({ configFile: path, cwd: directory, assignments, signal: part.signal, onEvent });
  } catch (error) {
    throw new RecipeError(`[${part.name}] the ${type} profile ${path}: ${(error as Error).message}`);
  }
  return [];
}

const switchSoftwareType: Recipe = {
  init(part) {
    // Evaluates the chosen profile's section now, so the part rendering it is installed first.
    chosenProfile(part);
  },
  install: runChosenProfile,
  update: runChosenProfile,
};

/** The nested buildout's [slap-configuration]: the outer one's values, set as they were. */
const switchNoop: Recipe = {
  init(part) {
    const encoded = part.options.get(NOOP_KEY);
    if (!encoded) return;
    const values = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')) as Record<string, string>;
    for (const [key, value] of Object.entries(values)) part.options.set(key, value);
  },
  async install() {
    return [];
  },
  async update() {},
};

// ---------------------------------------------------------------------------------------------
// request, requestoptional (and .serialised)

const REQUEST_STATES = ['started', 'stopped', 'destroyed'];

/** What a request's init learnt, for its install: the first missing `return` key, or the node's refusal. */
interface RequestOutcome {
  readonly name: string;
  readonly missing?: string;
  readonly status?: string;
  readonly refused?: string;
}

/** Keyed by the part's options: init and install see the same object, whatever the section's name. */
const outcomes = new WeakMap<PartOptions, RequestOutcome>();

interface RequestKind {
  /** requestoptional: never fails the run, whether the request was refused or is not ready. */
  readonly optional: boolean;
  /** .serialised: parameters sent as one JSON string under "_", connection parameters read from it. */
  readonly serialised: boolean;
}

function requestRecipe(kind: RequestKind): Recipe {
  const install = async (part: PartContext): Promise<string[]> => {
    const outcome = outcomes.get(part.options);
    if (!outcome) {
      if (kind.optional) {
        part.log('no node to ask (no server-url): not requested');
        return [];
      }
      throw new RecipeError(`the request recipe needs a running slapmesh node (slapos.cookbook:request in [${part.name}])`);
    }
    const failure = requestFailure(outcome);
    if (failure === undefined) return [];
    if (!kind.optional) throw new RecipeError(`[${part.name}] ${failure}`);
    part.log(`${failure} (an optional request: not an error)`);
    return [];
  };
  return {
    init(part) {
      const server = part.options.get('server-url')?.trim() || connectionOption(part, 'server-url');
      if (server) return requestFromNode(part, server, kind);
      // Standalone: the outputs exist (empty, as SlapOS sets them while a request is not ready), so
      // that profiles holding a request resolve.
      for (const name of words(part.options.get('return'))) {
        if (!part.options.has(`connection-${name}`)) part.options.set(`connection-${name}`, '');
      }
    },
    install,
    update: async (part) => {
      await install(part);
    },
  };
}

/** Why a request part fails (SlapOS's words for a missing connection parameter), or undefined. */
function requestFailure(outcome: RequestOutcome): string | undefined {
  if (outcome.refused !== undefined) return `the request of ${outcome.name} failed: ${outcome.refused}`;
  if (outcome.missing === undefined) return undefined;
  return `Connection parameter ${outcome.missing} not found. Status of requested instance is: ${outcome.status}. If this error persists, check status of this instance.`;
}

/**
 * Asks the node for the child instance while the configuration is evaluated, as SlapOS's request does
 * in its constructor, and sets `connection-<key>` for each key of `return` (empty while the child has
 * not published it) and `requested-state`, `instance-state`. A refusal or a missing key fails install
 * (requestoptional only logs it): the part is not recorded, so the next run, which the node starts when
 * the child's connection parameters change, requests again and completes.
 */
function requestFromNode(part: RecipeInit, server: string, kind: RequestKind): void {
  const asking = 'requesting an instance from the node';
  const endpoint = nodeEndpoint(part, server, asking);
  if (part.options.has('config') || part.options.has('sla')) {
    throw new RecipeError(`[${part.name}] 'config' & 'sla' options are obsolete. Clean up your software release.`);
  }
  const name = part.options.get('name')?.trim() || part.name;
  const release = required(part, 'software-url').trim();
  const type = part.options.get('software-type')?.trim() || 'default';
  const shared = TRUE_VALUES.includes((part.options.get('shared') ?? 'false').trim().toLowerCase());
  const config: Record<string, string> = {};
  for (const key of part.options.keys().sort()) {
    if (key.startsWith('config-')) config[key.slice('config-'.length)] = part.options.get(key) ?? '';
  }
  const parameters = kind.serialised ? { _: pyJson(config) } : config;
  const state = requestedState(part);
  part.options.set('requested-state', state);

  let answer: ChildAnswer | undefined;
  let refused: string | undefined;
  try {
    answer = childAnswer(part, callSlapSync(endpoint, 'request', { name, release, type, parameters, state, ...(shared ? { shared } : {}) }));
  } catch (error) {
    // As SlapOS: the node's refusal fails install, not the evaluation; not reaching it fails at once.
    if (!(error instanceof SlapCallError)) throw slapFailure(part, asking, error);
    refused = `${error.message} (${error.remoteName})`;
  }
  const connection = answer ? returnedParameters(answer.connection, kind.serialised) : {};
  let missing: string | undefined;
  for (const key of words(part.options.get('return'))) {
    const value = connection[key];
    if (value === undefined) missing ??= key;
    part.options.set(`connection-${key}`, value ?? '');
  }
  // Only the requested state: the child's status changes too often to be part of the part's signature.
  if (!shared) part.options.set('instance-state', state);
  const status = answer ? `${answer.status}${answer.message ? ` (${answer.message})` : ''}` : 'not ready yet';
  outcomes.set(part.options, { name, ...(missing !== undefined ? { missing } : {}), status, ...(refused !== undefined ? { refused } : {}) });
}

/** `state`, else the parent's requested state when started or stopped (never destroyed: that would destroy the tree). */
function requestedState(part: RecipeInit): string {
  const parent = connectionOption(part, 'requested') ?? connectionOption(part, 'requested-state');
  const state = part.options.get('state')?.trim() || (parent === 'stopped' ? 'stopped' : 'started');
  if (!REQUEST_STATES.includes(state)) throw new RecipeError(`[${part.name}] state must be one of ${REQUEST_STATES.join(', ')}, not ${state}`);
  return state;
}

interface ChildAnswer {
  ready: boolean;
  connection: Record<string, string>;
  status: string;
  message?: string;
}

function childAnswer(part: RecipeInit, answer: unknown): ChildAnswer {
  const value = answer as Partial<ChildAnswer> | null;
  const connection = value?.connection;
  const valid = typeof value === 'object' && value !== null && typeof value.ready === 'boolean' && typeof value.status === 'string'
    && typeof connection === 'object' && connection !== null && !Array.isArray(connection) && Object.values(connection).every((v) => typeof v === 'string');
  if (!valid) throw new RecipeError(`[${part.name}] the node's answer to the request is not valid`);
  return value as ChildAnswer;
}

/** The child's connection parameters; serialised, those in the JSON under "_" (strings kept, others as JSON). */
function returnedParameters(connection: Record<string, string>, serialised: boolean): Record<string, string> {
  if (!serialised) return connection;
  const wrapped = connection['_'];
  if (wrapped === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(wrapped);
  } catch {
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
  return Object.fromEntries(Object.entries(parsed).map(([key, value]) => [key, typeof value === 'string' ? value : JSON.stringify(value)]));
}

registerRecipe('slapos.cookbook:wrapper', wrapper);
registerRecipe('slapos.cookbook:mkdirectory', mkdirectory);
registerRecipe('slapos.cookbook:free_port', freePort);
registerRecipe('slapos.cookbook:generate.password', password);
registerRecipe('slapos.cookbook:switch-softwaretype', switchSoftwareType);
registerRecipe('slapos.cookbook:switch-softwaretype.noop', switchNoop);
registerRecipe('slapos.cookbook:request', requestRecipe({ optional: false, serialised: false }));
registerRecipe('slapos.cookbook:request.serialised', requestRecipe({ optional: false, serialised: true }));
registerRecipe('slapos.cookbook:requestoptional', requestRecipe({ optional: true, serialised: false }));
registerRecipe('slapos.cookbook:requestoptional.serialised', requestRecipe({ optional: true, serialised: true }));
