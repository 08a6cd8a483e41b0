// A buildout configuration from files to values: read (loader), fold (merge), then
// evaluate [buildout] as zc.buildout's start-up does; other sections are evaluated on demand.
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { BUILDOUT_DEFAULTS, DEFAULT_VERSION_PINS } from './defaults.js';
import { CircularReferenceError, ConfigError, SubstitutionError, type Diagnostic, type Location } from './errors.js';
import { isUrl, type DownloadOptions } from './fetch.js';
import { ConfigReader, loadFiles, type LoadedFile } from './loader.js';
import { updateConfig } from './merge.js';
import { Evaluation, type RecipeHook } from './options.js';
import { pyJoin, pySplit, pyStrip } from './pytext.js';
import { isOrigin, RawValue, type Origin, type RawConfig, type RawSection } from './raw.js';

/** `section:option=value` from the command line; `option` keeps a trailing `+`/`-`. */
export interface Assignment {
  readonly section: string;
  readonly option: string;
  readonly value: string;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

/** Parses `[section:]option=value` (section defaults to buildout), as zc.buildout does. */
export function parseAssignment(arg: string): Assignment {
  const eq = arg.indexOf('=');
  if (eq < 0) throw new UsageError(`not an assignment (section:option=value): ${arg}`);
  const names = arg.slice(0, eq).split(':');
  if (names.length > 2) throw new UsageError(`invalid option ${arg.slice(0, eq)}: one colon at most`);
  const [section, option] = names.length === 1 ? ['buildout', names[0]!] : [names[0]!, names[1]!];
  return { section: pyStrip(section), option: pyStrip(option), value: pyStrip(arg.slice(eq + 1)) };
}

export interface ConfigurationRequest {
  /** The root profile: a path (relative to cwd) or a URL. */
  readonly configFile: string;
  readonly assignments?: readonly Assignment[];
  readonly cwd?: string;
  readonly reader?: ConfigReader;
}

/** The merged, unsubstituted configuration and the files it came from. */
export interface Configuration {
  readonly raw: RawConfig;
  readonly files: readonly LoadedFile[];
}

export async function loadConfiguration(request: ConfigurationRequest): Promise<Configuration> {
  const cwd = request.cwd ?? process.cwd();
  const root = isUrl(request.configFile) ? request.configFile : resolvePath(cwd, request.configFile);
  const assignments = request.assignments ?? [];
  const cliExtends = assignments.filter((a) => a.section === 'buildout' && a.option === 'extends');
  const cli: RawConfig = new Map();
  for (const a of assignments) {
    if (a.section === 'buildout' && a.option === 'extends') continue;
    let section = cli.get(a.section);
    if (!section) cli.set(a.section, (section = new Map()));
    section.set(a.option, RawValue.set(a.value, 'COMMAND_LINE_VALUE'));
  }

  const defaults: RawSection = new Map(
    Object.entries(BUILDOUT_DEFAULTS).map(([k, v]) => [k, RawValue.set(v, 'DEFAULT_VALUE')]),
  );
  if (!isUrl(root)) defaults.set('directory', RawValue.set(dirname(root), 'COMPUTED_VALUE'));

  const files = await loadFiles(root, {
    cliExtends: cliExtends.flatMap((a) => pySplit(a.value)).map((f) => (isUrl(f) ? f : resolvePath(cwd, f))),
    download: await downloadOptions(root, defaults, cli.get('buildout'), request.reader),
    ...(request.reader ? { reader: request.reader } : {}),
  });

  const raw: RawConfig = new Map([['buildout', defaults]]);
  for (const file of files) updateConfig(raw, file.config);
  updateConfig(raw, cli);
  return { raw, files };
}

/**
 * How extended URLs are fetched: defaults, then the root file's own [buildout], then the
 * command line (so `buildout:offline=true` governs fetching too).
 */
async function downloadOptions(
  root: string, defaults: RawSection, cli: RawSection | undefined, reader = new ConfigReader(),
): Promise<DownloadOptions> {
  const pick = (name: string): RawValue | undefined => cli?.get(name) ?? rootBuildout?.get(name) ?? defaults.get(name);
  let rootBuildout: Map<string, RawValue> | undefined;
  if (!isUrl(root)) {
    try {
      const section = reader.parseFile(root).sections.get('buildout');
      if (section) rootBuildout = new Map([...section.options].map(([k, o]) => [k, RawValue.set(o.value, { file: root, line: o.line })]));
    } catch {
      // the loader reports an unreadable root file
    }
  }
  const offline = pick('offline')?.value === 'true' || pick('install-from-cache')?.value === 'true';
  const cache = pick('extends-cache');
  let extendsCache: string | undefined;
  if (cache?.value) {
    if (cache.value.includes('${')) {
      throw new ConfigError([{ ...locationOf(cache.origin, root), message: `extends-cache '${cache.value}' may not contain \${section:variable} to expand.` }]);
    }
    const base = isOrigin(cache.origin) ? dirname(cache.origin.file) : isUrl(root) ? process.cwd() : dirname(root);
    extendsCache = resolvePath(base, expandUser(cache.value));
  }
  return { offline, newest: !offline && pick('newest')?.value !== 'false', ...(extendsCache ? { extendsCache } : {}) };
}

function expandUser(p: string): string {
  return p === '~' || p.startsWith('~/') ? homedir() + p.slice(1) : p;
}

function locationOf(origin: Origin, fallbackFile: string): Location {
  return isOrigin(origin) ? origin : { file: fallbackFile, line: 1 };
}

/** `versions`, `zc.recipe.egg` pin, and the cache folders made absolute, before any substitution. */
function prepareRaw(config: Configuration, root: string): Map<string, Map<string, string>> {
  const data = config.raw;
  const buildout = data.get('buildout')!;
  if (!buildout.has('versions')) {
    buildout.set('versions', RawValue.set('versions', 'DEFAULT_VALUE'));
    if (!data.has('versions')) data.set('versions', new Map());
  }
  const versionsName = buildout.get('versions')!.value;
  if (versionsName) {
    const versions = data.get(versionsName);
    if (!versions) {
      throw new ConfigError([{ ...locationOf(buildout.get('versions')!.origin, root), message: `the versions section '${versionsName}' is not defined` }]);
    }
    for (const [name, pin] of Object.entries(DEFAULT_VERSION_PINS)) {
      if (!versions.has(name)) versions.set(name, RawValue.set(pin, 'DEFAULT_VALUE'));
    }
  }
  for (const name of ['download-cache', 'eggs-directory', 'extends-cache']) {
    const option = buildout.get(name);
    if (!option || option.value.includes('${') || isAbsolute(option.value)) continue;
    let base: string;
    if (isOrigin(option.origin)) {
      if (isUrl(option.origin.file)) {
        throw new ConfigError([{ ...option.origin, message: `Setting "${name}" to a non absolute location ("${option.value}") within a remote configuration file is ambiguous.` }]);
      }
      base = dirname(option.origin.file);
    } else {
      base = buildout.get('directory')?.value ?? process.cwd();
    }
    buildout.set(name, option.directory(resolvePath(base, expandUser(option.value))));
  }
  const raw = new Map<string, Map<string, string>>();
  for (const [name, section] of data) raw.set(name, new Map([...section].map(([k, v]) => [k, v.value])));
  const rawBuildout = raw.get('buildout')!;
  const directory = rawBuildout.get('directory');
  if (directory !== undefined) {
    for (const name of ['bin', 'parts', 'eggs', 'develop-eggs']) {
      const value = rawBuildout.get(`${name}-directory`)!;
      if (!value.includes('${')) rawBuildout.set(`${name}-directory`, pyJoin(directory, value));
    }
  }
  return raw;
}

const BOOLEANS: Readonly<Record<string, boolean>> = { true: true, false: false };

/**
 * Starts evaluating: [buildout] and the versions section are evaluated now, as zc.buildout
 * does at start-up; a problem there makes the whole configuration unusable (ConfigError).
 */
export function startEvaluation(config: Configuration, onRecipe?: RecipeHook): Evaluation {
  const root = config.files[0]?.id ?? 'buildout.cfg';
  const raw = prepareRaw(config, root);
  const evaluation = new Evaluation(raw, onRecipe);
  const where = (option: string): Location => {
    const origin = config.raw.get('buildout')?.get(option)?.origin;
    return origin ? locationOf(origin, root) : { file: root, line: 1 };
  };
  const fail = (option: string, message: string): never => {
    throw new ConfigError([{ ...where(option), message }]);
  };
  const bool = (value: string | undefined, option: string): boolean => {
    const b = value === undefined ? undefined : BOOLEANS[value];
    return b ?? fail(option, `Invalid value for '${option}' option: '${value ?? ''}' (use true or false)`);
  };

  const rawBuildout = raw.get('buildout')!;
  const offline = bool(rawBuildout.get('offline'), 'offline');
  if (!offline) bool(rawBuildout.get('newest'), 'newest');

  try {
    const options = evaluation.section('buildout');
    const directory = options.require('directory');
    for (const name of ['bin', 'parts', 'eggs', 'develop-eggs']) {
      const value = options.require(`${name}-directory`);
      options.set(`${name}-directory`, value.includes('${') ? value : pyJoin(directory, value));
    }
    const installed = options.require('installed');
    if (installed) options.set('installed', pyJoin(directory, installed));
    const level = options.require('log-level');
    if (!['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'].includes(level) && !/^\s*[-+]?\d+\s*$/.test(level)) {
      fail('log-level', `Invalid logging level ${level}`);
    }
    const verbosity = options.get('verbosity');
    if (verbosity !== undefined && !/^\s*[-+]?\d+\s*$/.test(verbosity)) fail('verbosity', `Invalid verbosity ${verbosity}`);
    const versions = options.require('versions');
    if (versions) evaluation.section(versions);
    for (const name of ['prefer-final', 'use-dependency-links', 'allow-picked-versions', 'show-picked-versions']) {
      bool(options.require(name), name);
    }
    options.require('update-versions-file');
    bool(options.get('abi-tag-eggs') ?? 'false', 'abi-tag-eggs');
    if (bool(options.require('install-from-cache'), 'install-from-cache') && offline) {
      fail('install-from-cache', "install-from-cache can't be used with offline mode.");
    }
    for (const name of Object.keys(BUILDOUT_DEFAULTS)) options.require(name);
  } catch (error) {
    if (error instanceof SubstitutionError) {
      const first = error.chain[0]?.split(':') ?? [];
      const at = first[0] === 'buildout' && first[1] ? where(first[1]) : { file: root, line: 1 };
      throw new ConfigError([{ ...at, message: `in [buildout]: ${describeSubstitutionError(error)}` }]);
    }
    throw error;
  }
  return evaluation;
}

/** The message with the chain of references that led to it. */
export function describeSubstitutionError(error: SubstitutionError): string {
  const message = error.message.replace(/\n/g, ' ');
  return error.chain.length > 1 && !(error instanceof CircularReferenceError) ? `${message} (${error.chain.join(' -> ')})` : message;
}

export type { Diagnostic };
