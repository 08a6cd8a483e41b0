// Shared parts, as SlapOS's `shared = true` (slapos.recipe.build's Shared; research/slapos.md §1.3): a part
// of a shareable recipe that says `shared = true` goes to `<shared root>/<section>/<signature>`, where the
// signature hashes what the part is made of — its recipe, its options with this buildout's own paths
// replaced by placeholders, the content of its local sources, and the signatures of the parts it depends
// on. The same part in any buildout directory, on any node, gets the same signature, so a built copy is
// reused by every buildout of this machine and fetched from the node's artifact cache by others.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { PROFILE_BASE } from '../config/loader.js';
import type { Evaluation, SectionOptions } from '../config/options.js';
import { pyCompare } from '../config/pytext.js';
import type { ArtifactCache, ArtifactRequest } from './artifact-cache.js';
import { flag, RecipeError, type PartLog, type PartOptions, type Recipe } from './recipe.js';

/**
 * Written last into a shared part's location, holding what its signature hashes: a location without
 * it is an interrupted install, removed and done again (SlapOS writes `.buildout-shared.json`).
 */
export const SHARED_MARKER = '.slapmesh-shared.json';

/** SlapOS's stand-in for a shared part's location in its own options (`prefix = @@LOCATION@@/usr`). */
export const LOCATION_PLACEHOLDER = '@@LOCATION@@';

/** Options that say where a part goes or how buildout tracks it, not what it is made of. */
const UNSIGNED = new Set(['location', 'shared', PROFILE_BASE, '_buildout_section_name_']);

export interface SharedPart {
  readonly name: string;
  /** sha256 of `description`, in hex. */
  readonly signature: string;
  /** The shared root it lives under (one of `[buildout] shared-part-list`). */
  readonly root: string;
  /** `<root>/<name>/<signature>`. */
  readonly location: string;
  /** What the signature hashes (JSON), written into the marker. */
  readonly description: string;
}

/**
 * The shared roots: the lines of `[buildout] shared-part-list` (relative ones from the buildout
 * directory), else `${buildout:directory}/shared`. A complete part found under any of them is used;
 * new ones go under the last, as slapgrid lists the writable root last.
 */
export function sharedRoots(buildout: PartOptions): string[] {
  const directory = buildout.require('directory');
  const listed = (buildout.get('shared-part-list') ?? '').split('\n')
    .map((line) => line.trim().replace(/(.)\/+$/, '$1'))
    .filter(Boolean)
    .map((line) => resolve(directory, line));
  return listed.length ? listed : [join(directory, 'shared')];
}

/** The shared parts of one evaluation, and the content signatures of the parts they depend on. */
export class SharedParts {
  private readonly shared = new Map<string, SharedPart>();
  private readonly signatures = new Map<string, string>();
  private readonly signing = new Set<string>();

  /** `recipes` holds the recipe of every part initialised so far. */
  constructor(private readonly recipes: ReadonlyMap<string, Recipe>) {}

  get(name: string): SharedPart | undefined {
    return this.shared.get(name);
  }

  /**
   * Called as a part's options are ready, before its recipe's init: a shared part gets its signature
   * and its `location`, which other sections read (`${zlib:location}`) and the recipe builds into.
   */
  prepare(section: SectionOptions, recipe: Recipe): SharedPart | undefined {
    const name = section.name;
    if (!recipe.shareable || !flag(name, 'shared', section.get('shared'))) return undefined;
    const given = section.get('location');
    if (given !== undefined && given.trim() !== LOCATION_PLACEHOLDER) {
      throw new RecipeError(`[${name}] a shared part's location is chosen by its signature: remove location, or shared = true`);
    }
    const description = this.describe(section, recipe);
    const signature = sha256(description);
    const roots = sharedRoots(section.evaluation.section('buildout'));
    const root = roots.find((r) => existsSync(join(r, name, signature, SHARED_MARKER))) ?? roots[roots.length - 1]!;
    const part: SharedPart = { name, signature, root, location: join(root, name, signature), description };
    section.set('location', part.location);
    this.shared.set(name, part);
    this.signatures.set(name, signature);
    return part;
  }

  /** A part's content signature: what a shared part depending on it hashes. */
  private signatureOf(evaluation: Evaluation, name: string): string {
    const known = this.signatures.get(name);
    if (known !== undefined) return known;
    if (this.signing.has(name)) return 'cycle'; // parts referring to each other: the cycle shows in their options
    this.signing.add(name);
    try {
      const recipe = this.recipes.get(name);
      const signature = sha256(this.describe(evaluation.section(name), recipe));
      this.signatures.set(name, signature);
      return signature;
    } finally {
      this.signing.delete(name);
    }
  }

  /** What a part is made of, as stable JSON: the same in any buildout directory. */
  private describe(options: SectionOptions, recipe: Recipe | undefined): string {
    const evaluation = options.evaluation;
    const buildout = evaluation.section('buildout');
    const directory = buildout.require('directory');
    const base = options.get(PROFILE_BASE);
    // The most specific path first: the shared root usually lies in the buildout directory. On a tie
    // (the profile in the buildout directory) the stable sort keeps the order below: the profile's wins.
    const placeholders: [string, string][] = [
      ...sharedRoots(buildout).map((root): [string, string] => [root, '${buildout:shared-part-list}']),
      ...(base ? [[base, '${:_profile_base_location_}'] as [string, string]] : []),
      [directory, '${buildout:directory}'],
    ];
    placeholders.sort((a, b) => b[0].length - a[0].length);
    const neutral = (value: string) => placeholders.reduce((text, [path, placeholder]) => replacePath(text, path, placeholder), value);

    const values: Record<string, string> = {};
    for (const key of options.keys().sort(pyCompare)) {
      if (!UNSIGNED.has(key) && !key.startsWith('__buildout')) values[key] = neutral(options.get(key) ?? '');
    }
    const sources: Record<string, string> = {};
    for (const source of recipe?.shareable?.sources?.(options) ?? []) {
      sources[neutral(source)] = hashSource(resolve(directory, source));
    }
    const dependencies: Record<string, string> = {};
    for (const dependency of evaluation.partDependencies(options.name).sort(pyCompare)) {
      dependencies[dependency] = this.signatureOf(evaluation, dependency);
    }
    return JSON.stringify({ recipe: values['recipe'] ?? '', version: recipe?.version ?? '1', options: values, sources, dependencies }, null, 2);
  }
}

/** `path` replaced where it is a whole path or a leading part of one (not `/a/bc` for `/a/b`). */
function replacePath(text: string, path: string, placeholder: string): string {
  if (!path) return text;
  const escaped = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return text.replace(new RegExp(`${escaped}(?![\\w.-])`, 'g'), () => placeholder);
}

/** A file or folder's content: names, kinds, executable bits, bytes and link targets; not times. */
function hashSource(path: string): string {
  const hash = createHash('sha256');
  const walk = (at: string, relative: string): void => {
    const info = lstatSync(at, { throwIfNoEntry: false });
    if (!info) {
      hash.update(`${JSON.stringify(['missing', relative])}\n`);
    } else if (info.isSymbolicLink()) {
      hash.update(`${JSON.stringify(['link', relative, readlinkSync(at)])}\n`);
    } else if (info.isDirectory()) {
      hash.update(`${JSON.stringify(['folder', relative])}\n`);
      for (const entry of readdirSync(at).sort()) walk(join(at, entry), relative ? `${relative}/${entry}` : entry);
    } else {
      hash.update(`${JSON.stringify(['file', relative, (info.mode & 0o111) !== 0, sha256(readFileSync(at))])}\n`);
    }
  };
  walk(path, '');
  return hash.digest('hex');
}

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** True when the part's location holds a complete install. */
export function isComplete(part: SharedPart): boolean {
  return existsSync(join(part.location, SHARED_MARKER));
}

export type SharedOutcome = 'reused' | 'fetched' | 'built';

export interface SharedInstall {
  readonly part: SharedPart;
  readonly buildoutDirectory: string;
  readonly cache: ArtifactCache | undefined;
  readonly log: PartLog;
  readonly signal: AbortSignal;
  /** The recipe's install, building into the part's location. */
  readonly build: () => Promise<void>;
}

/**
 * A shared part made available at its location: a complete copy already there is used; else the
 * artifact cache is asked; else it is built, marked complete, and published (a publish failure is
 * only logged: the part is installed all the same).
 */
export async function installShared(request: SharedInstall): Promise<SharedOutcome> {
  const { part, cache, log, signal } = request;
  if (isComplete(part)) {
    log(`Shared part ${part.location} is already installed: using it`);
    return 'reused';
  }
  if (await stat(part.location).catch(() => undefined)) {
    log(`Removing ${part.location}: an unfinished install (no ${SHARED_MARKER})`);
    await rm(part.location, { recursive: true, force: true });
  }
  await mkdir(dirname(part.location), { recursive: true });
  const artifact: ArtifactRequest = {
    signature: part.signature, part: part.name, location: part.location,
    sharedRoot: part.root, buildoutDirectory: request.buildoutDirectory, signal,
  };
  if (cache && (await fetchArtifact(cache, artifact, log))) {
    await markComplete(part);
    log(`Shared part ${part.location} fetched from the artifact cache`);
    return 'fetched';
  }
  log(`Building shared part ${part.location}`);
  await request.build();
  await markComplete(part);
  if (cache) {
    try {
      await cache.publish(artifact);
      log(`Shared part ${part.signature} published to the artifact cache`);
    } catch (error) {
      log(`Could not publish shared part ${part.signature} to the artifact cache: ${describeError(error)}`);
    }
  }
  return 'built';
}

/** True when the cache put a folder at the location; any failure but a cancel means building instead. */
async function fetchArtifact(cache: ArtifactCache, artifact: ArtifactRequest, log: PartLog): Promise<boolean> {
  let why: string;
  try {
    if (!(await cache.fetch(artifact))) why = 'it is not in the artifact cache';
    else if (!(await stat(artifact.location).catch(() => undefined))?.isDirectory()) why = `the artifact cache put no folder at ${artifact.location}`;
    else return true;
  } catch (error) {
    artifact.signal.throwIfAborted();
    why = `fetching it from the artifact cache failed (${describeError(error)})`;
  }
  log(`Shared part ${artifact.signature}: ${why}`);
  await rm(artifact.location, { recursive: true, force: true }); // whatever a failed fetch left
  return false;
}

/** The marker, written atomically and last: its presence means the whole part is there. */
async function markComplete(part: SharedPart): Promise<void> {
  const marker = join(part.location, SHARED_MARKER);
  await writeFile(`${marker}.tmp`, `${part.description}\n`);
  await rename(`${marker}.tmp`, marker);
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
