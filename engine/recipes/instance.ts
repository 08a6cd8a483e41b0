// The instance-side recipes of slapos.cookbook (design.md §7). In a node's partition (server-url
// unix:<socket>), slapconfiguration asks the node for the instance's parameters and publish sends it the
// connection parameters, through the partition socket (slap-client.ts). Standalone (no server-url),
// slapconfiguration reads the parameters from a JSON file and publish writes the connection parameters
// to one. promise.plugin writes a check the node, or a person, runs.
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { registerRecipe, RecipeError, type PartContext, type Recipe, type RecipeInit } from '../install/recipe.js';
import { pyJson } from './jinja2.js';
import { checkPromise, IN_PROCESS_CHECKS, PROMISE_MARKER } from './promise-check.js';
import { callSlap, callSlapSync, connectionOption, nodeEndpoint, slapFailure, type PartitionParameters } from './slap-client.js';

// ---------------------------------------------------------------------------------------------
// slapconfiguration

/**
 * The keys SlapOS's master adds to a partition's parameters, which slapconfiguration takes out and
 * sets as options of their own (a standalone parameters file may hold them too).
 */
const RESERVED: Readonly<Record<string, string>> = {
  slap_software_type: 'slap-software-type',
  slap_computer_partition_id: 'slap-computer-partition-id',
  slap_computer_id: 'slap-computer-id',
  slap_software_release_url: 'slap-software-release-url',
  slave_instance_list: 'slave-instance-list',
  timestamp: 'timestamp',
  instance_title: 'instance-title',
  root_instance_title: 'root-instance-title',
  root_instance_short_title: 'root-instance-short-title',
};

/** A standalone instance listens on loopback. */
const LOOPBACK: readonly (readonly [string, string])[] = [['lo', '127.0.0.1'], ['lo', '::1']];

function slapconfiguration(serialised: boolean): Recipe {
  return {
    version: '1',
    init(part) {
      const server = serverUrl(part);
      if (server) return configurationFromNode(part, server, serialised);
      const given = readParameters(part);
      const set = (key: string, value: string) => part.options.set(key, value);
      // As SlapOS does: the section's own options are defaults, what the "master" gives wins.
      const setDefault = (key: string, value: string) => {
        if (!part.options.has(key)) set(key, value);
      };

      for (const [key, option] of Object.entries(RESERVED)) {
        if (key in given) set(option, text(given[key]));
        delete given[key];
      }
      setDefault('slap-software-type', 'default');
      setDefault('instance-title', 'UNKNOWN Instance');
      setDefault('root-instance-title', 'UNKNOWN');
      setDefault('root-instance-short-title', 'UNKNOWN');
      setDefault('instance-state', 'started');

      const addresses = ipList(part, given['ip_list']);
      delete given['ip_list'];
      delete given['full_ip_list'];
      const ipv4 = addresses.filter((ip) => !ip.includes(':')).sort();
      const ipv6 = addresses.filter((ip) => ip.includes(':')).sort();
      setDefault('ipv4', ipv4.join('\n'));
      setDefault('ipv6', ipv6.join('\n'));
      if (ipv4[0]) setDefault('ipv4-random', ipv4[0]);
      if (ipv6[0]) setDefault('ipv6-random', ipv6[0]);
      set('storage-dict', JSON.stringify(storageDict(part)));
      setConfiguration(part, given, serialised);
    },
    install: async () => [],
    update: async () => [],
  };
}

/** `configuration` and `configuration.<key>`: the parameters (`.serialised`: those under "_"). */
function setConfiguration(part: RecipeInit, given: Record<string, unknown>, serialised: boolean): void {
  let parameters: unknown = given;
  if (serialised && typeof given['_'] === 'string') {
    try {
      parameters = JSON.parse(given['_']);
    } catch (error) {
      throw new RecipeError(`[${part.name}] the serialised parameters ("_") are not JSON: ${(error as Error).message}`);
    }
  }
  part.options.set('configuration', JSON.stringify(parameters));
  if (isObject(parameters)) {
    for (const [key, value] of Object.entries(parameters)) {
      // Names buildout cannot write as an option are left out, as SlapOS does (`configuration` has them).
      if (!/[=:\n]/.test(key)) part.options.set(`configuration.${key}`, text(value));
    }
  }
}

/** The node's address for this instance: `server-url` (or `url`) of the section, else of [slap-connection]. */
function serverUrl(part: RecipeInit): string | undefined {
  return part.options.get('server-url')?.trim() || part.options.get('url')?.trim() || nodeUrl(part);
}

/** `server-url` of [slap-connection], which the node adds to the instance profile it runs. */
function nodeUrl(part: RecipeInit): string | undefined {
  return connectionOption(part, 'server-url');
}


/**
 * In a node's partition: the options SlapOS's slapconfiguration sets from its master, from the node's
 * answer; what the node gives wins over the section's own options, as the master's values do.
 */
function configurationFromNode(part: RecipeInit, server: string, serialised: boolean): void {
  const asking = 'asking a node for the parameters';
  const endpoint = nodeEndpoint(part, server, asking);
  let answer: unknown;
  try {
    answer = callSlapSync(endpoint, 'parameters', {});
  } catch (error) {
    throw slapFailure(part, asking, error);
  }
  const given = nodeParameters(part, answer);
  const set = (key: string, value: string) => part.options.set(key, value);
  set('slap-software-type', given.softwareType || 'default');
  set('slap-computer-partition-id', given.partitionId);
  set('slap-computer-id', given.computerId);
  const release = connectionOption(part, 'software-release-url');
  if (release) set('slap-software-release-url', release);
  set('slave-instance-list', '[]'); // a slapmesh partition hosts no shared instances
  set('instance-title', given.instanceTitle);
  set('root-instance-title', given.rootInstanceTitle);
  set('root-instance-short-title', given.rootInstanceTitle);
  set('instance-state', connectionOption(part, 'requested-state') ?? 'started');
  const ipv4 = [...new Set(given.ipv4)].sort();
  const ipv6 = [...new Set(given.ipv6)].sort();
  set('ipv4', ipv4.join('\n'));
  set('ipv6', ipv6.join('\n'));
  if (ipv4[0]) set('ipv4-random', ipv4[0]);
  if (ipv6[0]) set('ipv6-random', ipv6[0]);
  // slapmesh's addition: partitions may share an address (macOS has one loopback), so they get ports.
  set('port-list', given.ports.join('\n'));
  set('storage-dict', JSON.stringify(storageDict(part)));
  setConfiguration(part, { ...given.parameters }, serialised);
}

function nodeParameters(part: RecipeInit, answer: unknown): PartitionParameters {
  const bad = (why: string) => new RecipeError(`[${part.name}] the node's parameters are not valid: ${why}`);
  if (!isObject(answer)) throw bad('not an object');
  if (!isObject(answer['parameters'])) throw bad('parameters must be an object');
  for (const key of ['softwareType', 'partitionId', 'computerId', 'instanceTitle', 'rootInstanceTitle']) {
    if (typeof answer[key] !== 'string') throw bad(`${key} must be a string`);
  }
  for (const key of ['ipv4', 'ipv6']) {
    const list = answer[key];
    if (!Array.isArray(list) || !list.every((ip) => typeof ip === 'string')) throw bad(`${key} must be a list of addresses`);
  }
  const ports = answer['ports'];
  if (!Array.isArray(ports) || !ports.every((port) => Number.isInteger(port))) throw bad('ports must be a list of port numbers');
  return answer as unknown as PartitionParameters;
}

/** The parameters file as a JSON object; no file at all means no parameters. */
function readParameters(part: RecipeInit): Record<string, unknown> {
  const name = part.options.get('parameters-file')?.trim();
  if (!name) return {};
  const path = resolve(part.buildout.directory, name);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new RecipeError(`[${part.name}] cannot read parameters-file ${path}: ${(error as Error).message}`);
  }
  if (!isObject(parsed)) throw new RecipeError(`[${part.name}] parameters-file ${path} must hold a JSON object`);
  return parsed;
}

/** The addresses of `ip_list` (`[[interface, address], ...]`), loopback when the file gives none. */
function ipList(part: RecipeInit, value: unknown): string[] {
  if (value === undefined) return LOOPBACK.map(([, ip]) => ip);
  if (!Array.isArray(value) || !value.every((pair) => Array.isArray(pair) && typeof pair[1] === 'string')) {
    throw new RecipeError(`[${part.name}] ip_list must be a list of [interface, address] pairs`);
  }
  return [...new Set(value.map((pair: unknown[]) => pair[1] as string))];
}

/** `storage-home` holds a folder per kind of storage, each with a folder per partition: those of this one. */
function storageDict(part: RecipeInit): Record<string, string> {
  const home = part.options.get('storage-home')?.trim();
  const partition = part.options.get('slap-computer-partition-id');
  const found: Record<string, string> = {};
  if (!home || !partition || !existsSync(home) || !statSync(home).isDirectory()) return found;
  for (const kind of readdirSync(home)) {
    const path = join(home, kind, partition);
    if (existsSync(path) && statSync(path).isDirectory()) found[kind] = path;
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// publish

/**
 * Every option but `recipe`, `location`, and those starting with `-` or `_` is a connection parameter
 * (`-publish` lists them explicitly; `-extends` adds other sections' parameters, as SlapOS does).
 * In a node's partition they are sent to the node (`.serialised`: as one JSON string under "_", as
 * SlapOS does). Standalone, they are written as a JSON object to `-connection-file`, default
 * `${buildout:directory}/connection.json`.
 */
function publishRecipe(serialised: boolean): Recipe {
  const publish = (part: PartContext) => publishConnection(part, serialised);
  return { version: '1', install: publish, update: publish };
}

async function publishConnection(part: PartContext, serialised: boolean): Promise<string[]> {
  // Its own options are the parameters: only [slap-connection] says where a node is.
  const server = nodeUrl(part);
  if (server) return publishToNode(part, server, serialised);
  const parameters = connectionParameters(part);
  const file = resolve(part.buildout.directory, part.options.get('-connection-file')?.trim() || 'connection.json');
  await writeAtomically(file, `${JSON.stringify(parameters, null, 2)}\n`, 0o644);
  part.log(`Published ${Object.keys(parameters).join(', ') || 'nothing'} to ${file}`);
  return [file];
}

/** Sends the connection parameters on every run: the node keeps the last ones. */
async function publishToNode(part: PartContext, server: string, serialised: boolean): Promise<string[]> {
  const asking = 'publishing to a node';
  const endpoint = nodeEndpoint(part, server, asking);
  // A shared instance's parameters would replace this instance's own: slapmesh has no shared instances.
  if (part.options.get('-slave-reference')?.trim()) throw new RecipeError(`[${part.name}] -slave-reference: publishing for a shared instance is not supported by slapmesh`);
  const parameters = connectionParameters(part);
  const connection = serialised ? { _: pyJson(parameters) } : parameters;
  try {
    await callSlap(endpoint, 'publish', { connection }, { signal: part.signal });
  } catch (error) {
    throw slapFailure(part, asking, error);
  }
  part.log(`Published ${Object.keys(parameters).join(', ') || 'nothing'} to the node`);
  return [];
}

function connectionParameters(part: PartContext): Record<string, string> {
  const sections = new Set<string>();
  const pending = [part.name];
  while (pending.length) {
    const name = pending.pop()!;
    if (sections.has(name)) continue;
    sections.add(name);
    pending.push(...words(part.section(name).get('-extends')));
  }
  const parameters: Record<string, string> = {};
  for (const name of [...sections].sort()) {
    const section = part.section(name);
    const listed = section.get('-publish');
    const keys = listed === undefined ? section.keys().filter(isParameter) : words(listed);
    for (const key of keys.sort()) parameters[key] = section.require(key);
  }
  return parameters;
}

function isParameter(option: string): boolean {
  return option !== 'recipe' && option !== 'location' && !/^[-_<]/.test(option);
}

// ---------------------------------------------------------------------------------------------
// promise.plugin

/** The SlapOS promise plugins slapmesh can run, by module name (slapos.toolbox's `config-*` keys). */
const CHECKS: readonly string[] = [...IN_PROCESS_CHECKS, 'check_command_execute'];

/**
 * `output` (the file), `module` (`slapos.promise.plugin.<check>`), `config-<key>` (the check's
 * settings). The file is an executable script run by this Node (promise-check.ts): it prints one line
 * and exits 0 when the check passes, 1 when it fails.
 */
const promisePlugin: Recipe = {
  version: '1',
  init(part) {
    promiseCheck(part);
    part.options.require('output');
  },
  install: writePromise,
  update: writePromise,
};

function promiseCheck(part: RecipeInit): { check: string; config: Record<string, string> } {
  const module = part.options.get('module')?.trim();
  if (!module) {
    throw new RecipeError(`[${part.name}] needs module = slapos.promise.plugin.<check>${part.options.get('file') ? ' (a Python file promise cannot run in slapmesh)' : ''}`);
  }
  const check = module.split('.').pop()!;
  if (!CHECKS.includes(check)) throw new RecipeError(`[${part.name}] promise ${module} is not supported by slapmesh (supported: ${CHECKS.join(', ')})`);
  const config: Record<string, string> = {};
  for (const key of part.options.keys().sort()) {
    if (key.startsWith('config-')) config[key.slice('config-'.length)] = part.options.get(key) ?? '';
  }
  return { check, config };
}

async function writePromise(part: PartContext): Promise<string[]> {
  const { check, config } = promiseCheck(part);
  const output = resolve(part.buildout.directory, part.options.require('output'));
  part.created(output);
  const script = [
    `#!${process.execPath}`,
    `// Written by slapmesh for [${part.name}] (slapos.cookbook:promise.plugin, ${check}): prints one line,`,
    '// exits 0 when the check passes, 1 when it fails. The node runs the check itself when it can (the line below).',
    // U+2028 and U+2029 would end the comment line.
    `${PROMISE_MARKER}${JSON.stringify({ check, config }).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')}`,
    `(${checkPromise.toString()})(${JSON.stringify(check)}, ${JSON.stringify(config, null, 2)})`,
    '  .then(({ ok, message }) => process.stdout.write(`${message}\\n`, () => process.exit(ok ? 0 : 1)));',
    '',
  ].join('\n');
  await mkdir(dirname(output), { recursive: true });
  await writeAtomically(output, script, 0o755);
  return [output];
}

// ---------------------------------------------------------------------------------------------

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A parameter as an option: strings as they are, anything else as JSON. */
function text(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function words(value: string | undefined): string[] {
  return (value ?? '').split(/\s+/).filter(Boolean);
}

/** A temporary file renamed into place: readers never see half a file. */
async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const partial = `${path}.${process.pid}.part`;
  try {
    await writeFile(partial, content, { mode });
    await chmod(partial, mode);
    await rename(partial, path);
  } finally {
    await rm(partial, { force: true });
  }
}

registerRecipe('slapos.cookbook:slapconfiguration', slapconfiguration(false));
registerRecipe('slapos.cookbook:slapconfiguration.serialised', slapconfiguration(true));
registerRecipe('slapos.cookbook:publish', publishRecipe(false));
registerRecipe('slapos.cookbook:publish.serialised', publishRecipe(true));
registerRecipe('slapos.cookbook:promise.plugin', promisePlugin);
