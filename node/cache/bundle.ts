// Release bundles (design.md §6): a profile with every file it extends and every local file or folder its
// options name, as a .tar.gz whose bytes depend only on the tree (sorted entries, zero times and owners,
// normalized modes), so that the same release has the same CID on every machine. Headers are encoded
// with node-tar's Header and Pax, but the stream is written here: node-tar's packer (even `portable`)
// keeps group and other bits of modes and turns a second name of a file into a hard link entry, so a
// checkout with other permissions or links would get another CID.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { list } from 'tar';
import { loadConfiguration, startEvaluation } from '../../engine/config/configuration.js';
import { isUrl } from '../../engine/config/fetch.js';
import { addLocation, resolveSections } from '../../engine/config/resolve.js';
import { extractArchive } from '../../engine/install/archive.js';
import { hashFile } from './cid.js';
import { tarStream, TarSourceError, type TarEntry } from './tar.js';

export interface ReleaseBundle {
  /** CID of the .tar.gz. */
  cid: string;
  /** The written archive, `<outDir>/<cid>.tar.gz`. */
  file: string;
  size: number;
  /** The root profile's folder basename. */
  name: string;
  /** The root profile inside the bundle (posix). */
  profile: string;
  /** Every regular file in the bundle (posix), sorted. */
  files: string[];
}

/** A release that cannot be bundled (unreadable path, escaping link), or an archive that is not a bundle. */
export class BundleError extends Error {
  override name = 'BundleError';
}

/** Options whose values name what a build writes, not what it reads. */
const OUTPUT_OPTIONS = new Set(['output', 'location', 'rendered']);
/** [buildout] options naming build folders and files. */
const BUILD_PATHS = ['parts-directory', 'bin-directory', 'eggs-directory', 'develop-eggs-directory', 'download-cache', 'extends-cache', 'installed'];
/** A pax global comment carries the root profile's path: the bundle's tree stays exactly the release's. */
const PROFILE_COMMENT = 'slapmesh-profile=';
/** RFC 1952's "Unix": zlib writes the OS it was built for (19 on macOS, 10 on Windows). */
const GZIP_OS_UNIX = 3;

type Kind = 'File' | 'Directory' | 'SymbolicLink';
interface Entry {
  kind: Kind;
  mode: number;
  size: number;
}
/** An entry as archived: `source` is where its bytes are read from. */
interface ArchiveEntry extends Entry {
  source: string;
  linkpath?: string;
}

/** release: a profile file, or a folder holding software.cfg. The archive is written into outDir (atomically: temp file + rename). */
export async function bundleRelease(release: string, outDir: string): Promise<ReleaseBundle> {
  const profile = await rootProfile(resolve(release));
  outDir = resolve(outDir);
  const configuration = await loadConfiguration({ configFile: profile });
  // Every section, as `buildout resolve` evaluates them; those that fail name nothing.
  const { sections } = resolveSections(startEvaluation(configuration, addLocation));
  const buildout = sections['buildout'] ?? {};
  const profiles = configuration.files.map((file) => file.id).filter((id) => !isUrl(id));
  const bases = [...new Set(profiles.map(dirname))];
  // A path naming a profile's folder or one of its parents is a base (`${buildout:directory}`), not content.
  const isBase = (path: string) => bases.some((base) => base === path || isInside(base, path));

  const outputs = [outDir, ...BUILD_PATHS.flatMap((name) => pathsIn(buildout[name] ?? ''))];
  const named: string[] = [];
  for (const options of Object.values(sections)) {
    for (const [option, value] of Object.entries(options)) (OUTPUT_OPTIONS.has(option) ? outputs : named).push(...pathsIn(value));
  }
  const tree = new Tree(outputs.filter((path) => !isBase(path)));
  for (const file of profiles) await tree.addProfile(file);
  for (const path of named) {
    if (!isBase(path) && bases.some((base) => isInside(path, base))) await tree.add(path, true);
  }
  for (const entry of (buildout['bundle-include'] ?? '').split(/\s+/).filter(Boolean)) {
    await tree.add(resolve(dirname(profile), entry), false);
  }

  // A folder included whole is inside the root, not only its contents: `bundle-include = .` keeps the root.
  const root = commonFolder([...tree.entries].map(([path, entry]) => (entry.kind === 'Directory' ? path : dirname(path))));
  const entries = await archiveEntries(root, tree.entries);
  const profilePath = toPosix(relative(root, profile));
  const { cid, size, file } = await writeArchive(root, entries, profilePath, outDir);
  const files = [...entries].filter(([, entry]) => entry.kind === 'File').map(([path]) => path);
  return { cid, file, size, name: basename(dirname(profile)), profile: profilePath, files };
}

/** Extracts a bundle into destination (safe: reuse extractArchive from engine/install/archive.ts); returns the root profile's path there. */
export async function unbundle(file: string, destination: string): Promise<string> {
  const profile = await bundledProfile(file);
  await extractArchive(file, destination);
  const path = join(resolve(destination), ...profile.split('/'));
  if (!(await stat(path).catch(() => undefined))?.isFile()) throw new BundleError(`bundle ${file} does not hold its profile ${profile}`);
  return path;
}

async function rootProfile(release: string): Promise<string> {
  const stats = await stat(release).catch((error: Error) => {
    throw new BundleError(`cannot read release ${release}: ${error.message}`);
  });
  if (!stats.isDirectory()) return release;
  const profile = join(release, 'software.cfg');
  if (!(await stat(profile).catch(() => undefined))?.isFile()) throw new BundleError(`release folder ${release} holds no software.cfg`);
  return profile;
}

/** Absolute paths a value names: whitespace-separated words, or what follows the last `=` in one (`--prefix=/x`). */
function pathsIn(value: string): string[] {
  const paths: string[] = [];
  for (const word of value.split(/\s+/)) {
    for (const candidate of [word, word.slice(word.lastIndexOf('=') + 1)]) {
      const path = candidate.replace(/^['"]+|['"]+$/g, ''); // quoted in command lines
      if (isAbsolute(path)) paths.push(resolve(path));
    }
  }
  return paths;
}

/** Strictly inside `folder`. */
function isInside(path: string, folder: string): boolean {
  return path.startsWith(folder.endsWith(sep) ? folder : folder + sep) && path !== folder;
}

/** The files, folders and links of a bundle, by absolute path, never holding build outputs. */
class Tree {
  readonly entries = new Map<string, Entry>();

  constructor(private readonly outputs: readonly string[]) {}

  private excluded(path: string): boolean {
    if (basename(path).endsWith('.log') || path.split(sep).includes('.git')) return true;
    return this.outputs.some((output) => output === path || isInside(path, output));
  }

  /** A profile the loader read: always in, as the file it read (through a link too). */
  async addProfile(path: string): Promise<void> {
    const stats = await stat(path).catch((error: Error) => {
      throw new BundleError(`cannot read ${path}: ${error.message}`);
    });
    this.entries.set(path, fileEntry(stats.mode, stats.size));
  }

  /** A file, a link, or a folder with everything in it; `optional`: a path that may not exist. */
  async add(path: string, optional: boolean): Promise<void> {
    if (this.entries.has(path) || this.excluded(path)) return;
    let stats;
    try {
      stats = await lstat(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (optional && (code === 'ENOENT' || code === 'ENOTDIR')) return;
      throw new BundleError(`cannot read ${path}: ${(error as Error).message}`);
    }
    if (stats.isSymbolicLink()) {
      this.entries.set(path, { kind: 'SymbolicLink', mode: 0o777, size: 0 });
    } else if (stats.isFile()) {
      this.entries.set(path, fileEntry(stats.mode, stats.size));
    } else if (stats.isDirectory()) {
      this.entries.set(path, DIRECTORY);
      const names = await readdir(path).catch((error: Error) => {
        throw new BundleError(`cannot read ${path}: ${error.message}`);
      });
      for (const name of names) await this.add(join(path, name), false);
    } else {
      throw new BundleError(`cannot bundle ${path}: not a file, folder or link`);
    }
  }
}

const DIRECTORY: Entry = { kind: 'Directory', mode: 0o755, size: 0 };

/** Modes as umask-free as git's: executable or not. */
function fileEntry(mode: number, size: number): Entry {
  return { kind: 'File', mode: mode & 0o111 ? 0o755 : 0o644, size };
}

function commonFolder(folders: readonly string[]): string {
  let common = folders[0]!.split(sep);
  for (const folder of folders) {
    const parts = folder.split(sep);
    let i = 0;
    while (i < common.length && i < parts.length && common[i] === parts[i]) i++;
    common = common.slice(0, i);
  }
  return common.join(sep) || sep;
}

function toPosix(path: string): string {
  return path.split(sep).join('/');
}

/** Entries by posix path relative to `root`, sorted, every folder listed before what it holds; links checked. */
async function archiveEntries(root: string, tree: ReadonlyMap<string, Entry>): Promise<Map<string, ArchiveEntry>> {
  const entries = new Map<string, ArchiveEntry>();
  for (const [source, entry] of tree) {
    if (source === root) continue;
    const path = toPosix(relative(root, source));
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join('/');
      if (!entries.has(folder)) entries.set(folder, { ...DIRECTORY, source: join(root, folder) });
    }
    const linkpath = entry.kind === 'SymbolicLink' ? await checkedLink(root, source, path) : undefined;
    entries.set(path, { ...entry, source, ...(linkpath === undefined ? {} : { linkpath }) });
  }
  // A path sorts before every longer path it prefixes, so a folder comes before its contents.
  return new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A link's target, if it stays inside the bundle: by its text, and as the OS follows it (links to links). */
async function checkedLink(root: string, source: string, path: string): Promise<string> {
  const target = await readlink(source).catch((error: Error) => {
    throw new BundleError(`cannot read ${source}: ${error.message}`);
  });
  const escape = () => new BundleError(`link ${source} points outside the bundle (${root}): ${target}`);
  const lexical = posix.normalize(posix.join(posix.dirname(path), target));
  if (posix.isAbsolute(target) || lexical === '..' || lexical.startsWith('../')) throw escape();
  const real = await realpath(source).catch(() => undefined); // a dangling link is judged by its text
  if (real !== undefined) {
    const realRoot = await realpath(root);
    if (real !== realRoot && !isInside(real, realRoot)) throw escape();
  }
  return target;
}

/** The tar stream, gzipped into a temp file in outDir, then renamed to `<cid>.tar.gz`. */
async function writeArchive(
  root: string, entries: ReadonlyMap<string, ArchiveEntry>, profile: string, outDir: string,
): Promise<{ cid: string; size: number; file: string }> {
  await mkdir(outDir, { recursive: true });
  const temp = join(outDir, `.bundle-${randomBytes(8).toString('hex')}.tmp`);
  try {
    await pipeline(Readable.from(tarStream(bundleEntries(entries), { comment: PROFILE_COMMENT + profile })), createGzip({ level: 9 }), createWriteStream(temp, { flags: 'wx' }));
    const handle = await open(temp, 'r+');
    try {
      await handle.write(Uint8Array.of(GZIP_OS_UNIX), 0, 1, 9);
    } finally {
      await handle.close();
    }
    const { cid, size } = await hashFile(temp);
    const file = join(outDir, `${cid}.tar.gz`);
    await rename(temp, file);
    return { cid, size, file };
  } catch (error) {
    await rm(temp, { force: true });
    if (error instanceof BundleError) throw error;
    if (error instanceof TarSourceError) throw new BundleError(error.message);
    throw new BundleError(`cannot write the bundle of ${root} into ${outDir}: ${(error as Error).message}`);
  }
}

function* bundleEntries(entries: ReadonlyMap<string, ArchiveEntry>): Generator<TarEntry> {
  for (const [path, entry] of entries) yield { path, type: entry.kind, mode: entry.mode, size: entry.size, source: entry.source, ...(entry.linkpath ? { linkpath: entry.linkpath } : {}) };
}

/** The root profile's path recorded in a bundle, checked to stay inside it. */
async function bundledProfile(file: string): Promise<string> {
  let comment: string | undefined;
  try {
    await list({ file, onReadEntry: (entry) => void (comment ??= entry.globalExtended?.comment) });
  } catch (error) {
    throw new BundleError(`cannot read bundle ${file}: ${(error as Error).message}`);
  }
  const profile = comment?.startsWith(PROFILE_COMMENT) ? comment.slice(PROFILE_COMMENT.length) : '';
  if (!profile || posix.isAbsolute(profile) || profile.split('/').includes('..')) {
    throw new BundleError(`${file} is not a release bundle (no valid ${PROFILE_COMMENT} comment)`);
  }
  return profile;
}
