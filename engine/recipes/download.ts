// slapos.recipe.build:download (one file, verified, copied into the part) and
// slapos.recipe.build:download-unpacked (an archive extracted into the part), as SlapOS uses them.
import { chmod, copyFile, lstat, mkdir, rename, rm } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extractArchive } from '../install/archive.js';
import { splitChecksumFragment } from '../install/download.js';
import { flag, isTrue, registerRecipe, RecipeError, type PartContext, type PartOptions, type Recipe } from '../install/recipe.js';

/**
 * `url` (`#md5` fragment allowed), `md5sum`, `filename` (default: the section name), `destination`
 * (the file's path; default `${:location}/${:filename}`), `mode` (octal), `shared`. Sets `target`: the
 * file's path.
 */
const downloadFile: Recipe = {
  version: '1',
  shareable: { sources: localSources },
  init(part) {
    refuseSharedDestination(part.name, part.options);
    const destination = part.options.get('destination')?.trim();
    const filename = part.options.get('filename')?.trim() || part.name;
    part.options.set('target', destination || join(part.options.require('location'), filename));
  },
  async install(part) {
    const target = part.options.require('target');
    const mode = octalMode(part);
    // Without a destination the part owns a folder, as SlapOS's recipe does; with one, just the file.
    const owned = part.options.get('destination')?.trim() ? target : part.options.require('location');
    if (owned === target && (await lstat(target).catch(() => undefined))?.isFile()) await rm(target);
    await clearLeftover(part, owned);
    part.created(owned);
    const file = await sourceFile(part);
    await mkdir(dirname(target), { recursive: true });
    const partial = `${target}.part`;
    try {
      await copyFile(file, partial);
      if (mode !== undefined) await chmod(partial, mode);
      await rename(partial, target);
    } finally {
      await rm(partial, { force: true });
    }
    return [owned];
  },
  update: async () => [],
};

/**
 * `url` (`#md5` allowed), `md5sum`, `destination` (default: the location), `strip-top-level-dir`
 * (unless false, an archive holding exactly one folder at its top is extracted from inside that
 * folder, as slapos.recipe.build does by default), `shared`.
 */
const downloadUnpacked: Recipe = {
  version: '1',
  shareable: { sources: localSources },
  init(part) {
    refuseSharedDestination(part.name, part.options);
  },
  async install(part) {
    const destination = part.options.get('destination')?.trim() || part.options.require('location');
    const strip = flag(part.name, 'strip-top-level-dir', part.options.get('strip-top-level-dir'));
    await clearLeftover(part, destination);
    part.created(destination);
    const archive = await sourceFile(part);
    await extractArchive(archive, destination, { stripTopLevel: strip !== false });
    return [destination];
  },
  update: async () => [],
};

/** The file named by `url`, verified against `md5sum` (or the URL's `#md5`). */
function sourceFile(part: PartContext): Promise<string> {
  const md5 = part.options.get('md5sum')?.trim();
  return part.download(part.options.require('url'), md5 ? { md5 } : undefined);
}

/** A shared part is its location, which other buildouts use too: it cannot put files elsewhere. */
function refuseSharedDestination(name: string, options: PartOptions): void {
  if (isTrue(name, 'shared', options.get('shared')) && options.get('destination')?.trim()) {
    throw new RecipeError(`[${name}] destination cannot be used with shared = true: a shared part is installed in its own location`);
  }
}

/** The local file a shared part's signature must cover: `url` when it is local and has no md5. */
function localSources(options: PartOptions): string[] {
  const url = options.get('url')?.trim() ?? '';
  return url && !options.get('md5sum')?.trim() ? localFile(url) : [];
}

/** `[path]` when `url` names a local file or `file:` URL without an `#md5` fragment; else `[]`. */
export function localFile(url: string): string[] {
  const { url: bare, md5 } = splitChecksumFragment(url);
  if (md5) return [];
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(bare)?.[1]?.toLowerCase();
  if (scheme === undefined) return [bare];
  if (scheme !== 'file') return [];
  try {
    return [fileURLToPath(bare)];
  } catch {
    return []; // a bad file: URL: the download says so
  }
}

function octalMode(part: PartContext): number | undefined {
  const mode = part.options.get('mode')?.trim();
  if (!mode) return undefined;
  if (!/^0?o?[0-7]{1,4}$/.test(mode)) throw new RecipeError(`[${part.name}] mode must be octal (like 0644), got ${JSON.stringify(mode)}`);
  return parseInt(mode.replace(/^0?o/, ''), 8);
}

/**
 * Makes room for a part's path. What an earlier, interrupted run left in the parts directory is
 * removed; anything else already there is refused rather than deleted.
 */
export async function clearLeftover(part: PartContext, path: string): Promise<void> {
  if (!(await lstat(path).catch(() => undefined))) return;
  const inside = relative(part.buildout.partsDirectory, path);
  if (inside && !inside.startsWith('..') && !isAbsolute(inside)) {
    part.log(`Removing ${path}, left by an earlier run`);
    await rm(path, { recursive: true, force: true });
    return;
  }
  throw new RecipeError(`[${part.name}] ${path} already exists outside the parts directory: remove it, or choose another path`);
}

/** One shell word, whatever it holds. */
export function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

registerRecipe('slapos.recipe.build:download', downloadFile);
registerRecipe('slapos.recipe.build:download-unpacked', downloadUnpacked);
