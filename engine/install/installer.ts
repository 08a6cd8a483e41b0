// `buildout install`: parts from [buildout] parts plus every part they refer to, referenced
// parts first; unchanged parts updated, changed ones (options, recipe, or a part they depend
// on) uninstalled and installed again, removed ones uninstalled; independent parts in parallel.
// Shared parts (`shared = true`) are reused, fetched from the artifact cache or built: shared.ts.
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, rmSync, type WriteStream } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { describeSubstitutionError, loadConfiguration, startEvaluation, type ConfigurationRequest } from '../config/configuration.js';
import { SubstitutionError } from '../config/errors.js';
import type { Evaluation, SectionOptions } from '../config/options.js';
import { pyCompare, pySplit } from '../config/pytext.js';
import { addLocation } from '../config/resolve.js';
import type { ArtifactCache } from './artifact-cache.js';
import { download } from './download.js';
import { cleanEnvironment, runCommand } from './environment.js';
import { readInstalled, SIGNATURE, writeInstalled, type InstalledPart } from './installed.js';
import { findRecipe, RecipeError, type BuildoutSettings, type PartContext, type Recipe } from './recipe.js';
import { installShared, isComplete, SharedParts } from './shared.js';
import { makeWorkDir } from './work-dir.js';
import '../recipes/index.js';

export type InstallEvent =
  | { readonly type: 'install' | 'update' | 'uninstall'; readonly part: string }
  | { readonly type: 'log'; readonly part: string; readonly line: string }
  | { readonly type: 'done'; readonly part: string; readonly seconds: number }
  | { readonly type: 'failed'; readonly part: string; readonly error: Error };

export interface InstallRequest extends ConfigurationRequest {
  /** How many independent parts may build at once (default 1). */
  readonly jobs?: number;
  readonly onEvent?: (event: InstallEvent) => void;
  readonly signal?: AbortSignal;
  /** The node's build cache: shared parts are fetched from it before being built, and published to it after. */
  readonly artifactCache?: ArtifactCache;
}

export interface InstallReport {
  readonly installed: string[];
  readonly updated: string[];
  readonly uninstalled: string[];
}

/** A part failed; the parts before it stay installed, the failed one left nothing behind. */
export class InstallError extends Error {
  override name = 'InstallError';
  constructor(message: string, readonly part?: string, readonly log?: string) {
    super(message);
  }
}

export async function install(request: InstallRequest): Promise<InstallReport> {
  const signal = request.signal ?? new AbortController().signal;
  const emit = request.onEvent ?? (() => undefined);
  const configuration = await loadConfiguration(request);
  const recipes = new Map<string, Recipe>();
  const shared = new SharedParts(recipes);
  const evaluation = startEvaluation(configuration, (section, ev) => {
    const spec = section.require('recipe');
    const recipe = findRecipe(spec);
    if (!recipe) {
      throw new RecipeError(`[${section.name}]: recipe ${spec} is not available in slapmesh (docs/recipes.md lists the built-in recipes)`);
    }
    recipes.set(section.name, recipe);
    shared.prepare(section, recipe); // before addLocation: a shared part's location is its own
    addLocation(section, ev);
    recipe.init?.({
      name: section.name, options: section, buildout: settingsOf(ev),
      section: (name) => {
        ev.noteReference(section.name, name); // what a recipe reads, it depends on
        return ev.section(name);
      },
    });
  });

  const { parts, options } = selectParts(evaluation);
  const settings = settingsOf(evaluation);
  for (const dir of [settings.binDirectory, settings.partsDirectory]) mkdirSync(dir, { recursive: true });
  // Which parts each part depends on, worked out once: signatures and scheduling both need it.
  const dependencies = new Map(parts.map((name) => [name, evaluation.partDependencies(name)]));
  const signatures = signParts(parts, options, recipes, dependencies);
  const installedPath = evaluation.section('buildout').require('installed');
  const state = readInstalled(installedPath);
  const report: InstallReport = { installed: [], updated: [], uninstalled: [] };

  const work = makeWorkDir();
  // Without a download cache, downloads live as long as this run.
  const downloadSettings = settings.downloadCache ? settings : { ...settings, downloadCache: join(work, 'downloads') };
  const logs = new PartLogs(join(settings.directory, '.slapmesh', 'logs'), emit);
  try {
    for (const name of [...state.keys()].reverse()) {
      const old = state.get(name)!;
      const now = options.get(name);
      const sharedPart = shared.get(name);
      const present = old.paths.every((p) => existsSync(p)) && (!sharedPart || isComplete(sharedPart));
      if (now && sameOptions(old.options, { ...now, [SIGNATURE]: signatures.get(name)! }) && present) continue;
      emit({ type: 'uninstall', part: name });
      await uninstallPart(name, old, recipes.get(name), settings.directory, logs);
      state.delete(name);
      writeInstalled(installedPath, state);
      report.uninstalled.push(name);
    }

    const contextFor = (name: string, created: string[]): PartContext => {
      const environment = cleanEnvironment(work, work);
      const log = logs.logger(name);
      return {
        name, options: evaluation.section(name), buildout: settings, section: (n) => evaluation.section(n),
        signal, log, environment,
        created: (...paths) => created.push(...paths),
        download: (url, checksum) => download({ url, ...(checksum ? { checksum } : {}), settings: downloadSettings, log, signal, baseDir: settings.directory }),
        run: (command, runOptions) => runCommand(command, environment, log, signal, runOptions),
      };
    };

    const buildPart = async (name: string): Promise<void> => {
      const recipe = recipes.get(name)!;
      const saved = { ...options.get(name)!, [SIGNATURE]: signatures.get(name)! };
      const previous = state.get(name);
      const started = performance.now();
      const created: string[] = [];
      const location = evaluation.section(name).get('location');
      const locationIsNew = location !== undefined && !existsSync(location);
      emit({ type: previous ? 'update' : 'install', part: name });
      try {
        let paths: string[];
        const sharedPart = shared.get(name);
        if (previous) {
          paths = [...previous.paths, ...((await recipe.update?.(contextFor(name, created))) ?? []), ...created];
        } else if (sharedPart) {
          paths = [];
          await installShared({
            part: sharedPart, buildoutDirectory: settings.directory, cache: request.artifactCache, log: logs.logger(name), signal,
            build: async () => {
              paths = [...created, ...(await recipe.install(contextFor(name, created)))];
            },
          });
        } else {
          const returned = await recipe.install(contextFor(name, created));
          paths = [...created, ...returned];
        }
        let absolute = [...new Set(paths.map((p) => (isAbsolute(p) ? p : join(settings.directory, p))))];
        // Other buildouts use a shared part: uninstalling this one must leave it (as SlapOS does).
        if (sharedPart) absolute = absolute.filter((p) => !isInside(p, sharedPart.location));
        if (!previous || absolute.length !== previous.paths.length) {
          state.delete(name);
          state.set(name, { options: saved, paths: absolute });
          writeInstalled(installedPath, state);
        }
        (previous ? report.updated : report.installed).push(name);
        emit({ type: 'done', part: name, seconds: (performance.now() - started) / 1000 });
      } catch (error) {
        // Nothing of a failed part stays: what it registered, and its location if this run made it.
        for (const p of created) rmSync(p, { recursive: true, force: true });
        if (locationIsNew && location) rmSync(location, { recursive: true, force: true });
        if (previous) {
          for (const p of previous.paths) rmSync(p, { recursive: true, force: true });
          state.delete(name);
          writeInstalled(installedPath, state);
        }
        const failure = error instanceof Error ? error : new Error(String(error));
        emit({ type: 'failed', part: name, error: failure });
        throw new InstallError(`[${name}] ${previous ? 'update' : 'install'} failed: ${failure.message}`, name, logs.path(name));
      } finally {
        await logs.close(name);
      }
    };

    await runInOrder(parts, (name) => dependencies.get(name) ?? [], Math.max(1, request.jobs ?? 1), buildPart);
    return report;
  } finally {
    await logs.closeAll();
    rmSync(work, { recursive: true, force: true });
  }
}

/** Every part to install with its options as they will be saved (taking them may find more parts). */
function selectParts(evaluation: Evaluation): { parts: string[]; options: Map<string, Record<string, string>> } {
  const options = new Map<string, Record<string, string>>();
  try {
    for (const name of pySplit(evaluation.section('buildout').require('parts'))) {
      const section = evaluation.section(name);
      if (!section.get('recipe')) throw new RecipeError(`[${name}] is in [buildout] parts but has no recipe`);
    }
    for (let i = 0; i < evaluation.parts.length; i++) {
      const name = evaluation.parts[i]!;
      if (!options.has(name)) options.set(name, snapshot(evaluation.section(name)));
    }
  } catch (error) {
    if (error instanceof SubstitutionError) throw new InstallError(`cannot evaluate the parts: ${describeSubstitutionError(error)}`);
    throw error;
  }
  return { parts: [...options.keys()], options };
}

function snapshot(section: SectionOptions): Record<string, string> {
  const values: Record<string, string> = {};
  for (const key of section.keys().sort(pyCompare)) {
    if (!key.startsWith('__buildout')) values[key] = section.get(key) ?? '';
  }
  return values;
}

/**
 * A part's signature: its recipe (and the recipe's version), its options, and the signatures
 * of the parts it depends on (as SlapOS's fork does), so a changed dependency rebuilds it.
 */
function signParts(parts: readonly string[], options: Map<string, Record<string, string>>, recipes: Map<string, Recipe>, dependencies: Map<string, string[]>): Map<string, string> {
  const signatures = new Map<string, string>();
  for (const name of parts) {
    const hash = createHash('sha256');
    const spec = options.get(name)!['recipe'] ?? '';
    hash.update(JSON.stringify([spec, recipes.get(name)?.version ?? '1', options.get(name)]));
    for (const dep of [...(dependencies.get(name) ?? [])].sort()) hash.update(`${dep}=${signatures.get(dep) ?? ''}`);
    signatures.set(name, `${spec}@${recipes.get(name)?.version ?? '1'}-${hash.digest('hex').slice(0, 32)}`);
  }
  return signatures;
}

function isInside(path: string, folder: string): boolean {
  const inside = relative(folder, path);
  return !inside.startsWith('..') && !isAbsolute(inside);
}

function sameOptions(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

async function uninstallPart(name: string, old: InstalledPart, recipe: Recipe | undefined, directory: string, logs: PartLogs): Promise<void> {
  const uninstaller = recipe ?? (old.options['recipe'] ? findRecipe(old.options['recipe']) : undefined);
  await uninstaller?.uninstall?.({ name, options: old.options, log: logs.logger(name) });
  for (const p of old.paths) rmSync(isAbsolute(p) ? p : join(directory, p), { recursive: true, force: true });
}

/** Runs `build` on every item once its dependencies are done, `jobs` at a time; the first failure stops new starts. */
async function runInOrder(items: readonly string[], dependencies: (item: string) => string[], jobs: number, build: (item: string) => Promise<void>): Promise<void> {
  const pending = new Set(items);
  const done = new Set<string>();
  const running = new Map<string, Promise<void>>();
  let failure: unknown;
  while ((pending.size || running.size) && failure === undefined) {
    for (const item of [...pending]) {
      if (running.size >= jobs) break;
      if (!dependencies(item).every((d) => done.has(d) || !pending.has(d) && !running.has(d))) continue;
      pending.delete(item);
      running.set(item, build(item).then(() => {
        done.add(item);
      }, (error: unknown) => {
        failure ??= error;
      }).finally(() => running.delete(item)));
    }
    if (running.size === 0 && pending.size) throw new InstallError(`dependency cycle among parts: ${[...pending].join(', ')}`);
    await Promise.race(running.values());
  }
  await Promise.all(running.values());
  if (failure !== undefined) throw failure;
}

function settingsOf(evaluation: Evaluation): BuildoutSettings {
  const b = evaluation.section('buildout');
  const cache = b.get('download-cache');
  return {
    directory: b.require('directory'),
    partsDirectory: b.require('parts-directory'),
    binDirectory: b.require('bin-directory'),
    offline: b.get('offline') === 'true',
    frozen: b.get('frozen') === 'true',
    ...(cache ? { downloadCache: cache } : {}),
    allowHosts: (b.get('allow-hosts') ?? '*').split('\n').map((h) => h.trim()).filter(Boolean),
  };
}

/** One log file per part, in the buildout directory's `.slapmesh/logs/`, started afresh at a part's first line. */
class PartLogs {
  private readonly streams = new Map<string, WriteStream>();
  constructor(private readonly dir: string, private readonly emit: (event: InstallEvent) => void) {}

  path(name: string): string {
    return join(this.dir, `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.log`);
  }

  logger(name: string): (line: string) => void {
    return (line) => {
      let stream = this.streams.get(name);
      if (!stream) {
        mkdirSync(this.dir, { recursive: true });
        this.streams.set(name, (stream = createWriteStream(this.path(name), { flags: 'w' })));
      }
      stream.write(`${line}\n`);
      this.emit({ type: 'log', part: name, line });
    };
  }

  /** Flushes and closes a part's log. */
  async close(name: string): Promise<void> {
    const stream = this.streams.get(name);
    this.streams.delete(name);
    if (stream) await new Promise((resolve) => stream.end(resolve));
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.streams.keys()].map((name) => this.close(name)));
  }
}
