// Unpacking archives for recipes (cmmi, download-unpacked). tar, gzip and zstd are read by node-tar; bzip2
// and xz are first decompressed by the system tool, so every tar goes through the same checks; zip is
// listed and extracted by the system unzip. The archive is extracted beside the destination, checked, and
// only then moved into place (design.md §6: no absolute paths, no `..`, no links leaving the tree, no devices).
import { spawn } from 'node:child_process';
import { open, mkdir, mkdtemp, readdir, readlink, rename, rm, lstat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, posix, relative, resolve } from 'node:path';
import { list, extract, type ReadEntry } from 'tar';
import { RecipeError } from './recipe.js';

/** An archive that cannot be read or extracted, or a destination that is not empty. */
export class ArchiveError extends RecipeError {
  override name = 'ArchiveError';
}
/** An entry that would write outside the destination, or a device file: the whole archive is refused. */
export class UnsafeArchiveError extends ArchiveError {
  override name = 'UnsafeArchiveError';
}

export interface ExtractOptions {
  /** When the archive holds exactly one top-level folder, its contents become the destination. */
  stripTopLevel?: boolean;
  /** Runs on the checked tree before it is moved into place (a failure leaves nothing, as any other). */
  beforeMove?: (tree: string) => Promise<void>;
}

/** Extracts `archive` into `destination` (created; it must be empty or absent); nothing is left there on failure. */
export async function extractArchive(archive: string, destination: string, options: ExtractOptions = {}): Promise<void> {
  archive = resolve(archive); // absolute: never read as an option by the tools it is given to
  destination = resolve(destination);
  const existing = await readdir(destination).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw new ArchiveError(`cannot extract into ${destination}: ${error.message}`);
  });
  if (existing.length) throw new ArchiveError(`cannot extract into ${destination}: it is not empty`);

  await mkdir(dirname(destination), { recursive: true });
  // Beside the destination, so that the final rename stays on one file system.
  const work = await mkdtemp(join(dirname(destination), `.${basename(destination)}.extract-`));
  const tree = join(work, 'tree');
  try {
    await mkdir(tree);
    const format = await sniff(archive);
    if (format === 'zip') {
      await unzip(archive, tree);
    } else {
      let tarFile = archive;
      if (format !== 'tar') {
        tarFile = join(work, 'archive.tar');
        await decompress(format, archive, tarFile);
      }
      await untar(archive, tarFile, tree);
    }
    const root = (options.stripTopLevel && (await singleFolder(tree))) || tree;
    await checkTree(archive, tree, root);
    await options.beforeMove?.(root);
    await rename(root, destination).catch((error: NodeJS.ErrnoException) => {
      throw new ArchiveError(`cannot move ${archive} into ${destination}: ${error.message}`);
    });
  } finally {
    // Retries: after a failed extraction node-tar may still be finishing a write in the tree.
    await rm(work, { recursive: true, force: true, maxRetries: 5 });
  }
}

type Format = 'tar' | 'zip' | 'bzip2' | 'xz';

/** By content, not by name: downloads are often named after a URL. node-tar itself recognises gzip and zstd. */
async function sniff(archive: string): Promise<Format> {
  let head: string;
  try {
    const file = await open(archive, 'r');
    try {
      const { buffer, bytesRead } = await file.read(Buffer.alloc(512), 0, 512, 0);
      head = buffer.toString('latin1', 0, bytesRead);
    } finally {
      await file.close();
    }
  } catch (error) {
    throw new ArchiveError(`cannot read archive ${archive}: ${(error as Error).message}`);
  }
  // A plain tar starts with a file name, which could look like a magic number: its own magic comes first.
  if (head.slice(257, 262) === 'ustar') return 'tar';
  if (/^PK(\x03\x04|\x05\x06)/.test(head)) return 'zip';
  if (/^BZh[1-9]/.test(head)) return 'bzip2';
  if (head.startsWith('\xfd7zXZ\x00')) return 'xz';
  return 'tar';
}

async function decompress(format: 'bzip2' | 'xz', archive: string, output: string): Promise<void> {
  const file = await open(output, 'wx');
  try {
    await run(format, ['-dc', '--', archive], file.fd);
  } finally {
    await file.close();
  }
}

/** Lists every entry first, so that one bad entry refuses the archive before anything is written. */
async function untar(archive: string, tarFile: string, tree: string): Promise<void> {
  let refused: string | undefined;
  try {
    await list({
      file: tarFile,
      strict: true,
      onReadEntry: (entry) => {
        refused ??= unsafeEntry(entry);
      },
    });
  } catch (error) {
    throw new ArchiveError(`cannot read archive ${archive}: ${(error as Error).message}`);
  }
  if (refused) throw new UnsafeArchiveError(`refusing archive ${archive}: ${refused}`);
  try {
    // strict: node-tar's own refusals (writing through a link, unsupported entries) are errors too.
    await extract({ file: tarFile, cwd: tree, strict: true, preserveOwner: false });
  } catch (error) {
    throw new ArchiveError(`cannot extract ${archive}: ${(error as Error).message}`);
  }
}

const SAFE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'GNUDumpDir', 'SymbolicLink', 'Link']);

/** Why a tar entry is refused, by its header alone. */
function unsafeEntry(entry: ReadEntry): string | undefined {
  const name = entry.path;
  const problem = unsafePath(name);
  if (problem) return `entry '${name}' ${problem}`;
  if (!SAFE_TYPES.has(entry.type)) return `entry '${name}' is a ${entry.type} (only files, folders and links are allowed)`;
  const target = entry.linkpath ?? '';
  if (entry.type === 'Link' && unsafePath(target)) return `entry '${name}' is a hard link outside the destination (to '${target}')`;
  if (entry.type === 'SymbolicLink' && (target.startsWith('/') || escapes(posix.join(posix.dirname(name), target)))) {
    return `entry '${name}' is a link outside the destination (to '${target}')`;
  }
  return undefined;
}

function unsafePath(name: string): string | undefined {
  if (name.startsWith('/') || /^[a-z]:/i.test(name)) return 'is an absolute path';
  if (name.split(/[/\\]/).includes('..')) return "contains '..'";
  return undefined;
}

function escapes(path: string): boolean {
  const normal = posix.normalize(path);
  return normal === '..' || normal.startsWith('../');
}

async function unzip(archive: string, tree: string): Promise<void> {
  const names = await run('unzip', ['-Z1', archive]);
  for (const name of names.split('\n').filter(Boolean)) {
    const problem = unsafePath(name);
    if (problem) throw new UnsafeArchiveError(`refusing archive ${archive}: entry '${name}' ${problem}`);
  }
  // Links are checked once extracted (unzip creates them last); -o: no question if a name repeats.
  await run('unzip', ['-qq', '-o', archive, '-d', tree]);
}

/** The only entry of `tree` when it is a folder. */
async function singleFolder(tree: string): Promise<string | undefined> {
  const entries = await readdir(tree, { withFileTypes: true });
  return entries.length === 1 && entries[0]?.isDirectory() ? join(tree, entries[0].name) : undefined;
}

/**
 * The extracted tree holds only files, folders and links that stay inside `root` once every link on the
 * way is followed (a chain such as `a -> .`, `b -> a/..` escapes though each link looks harmless).
 */
async function checkTree(archive: string, tree: string, root: string): Promise<void> {
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const refuse = (why: string) => new UnsafeArchiveError(`refusing archive ${archive}: entry '${relative(tree, path)}' ${why}`);
    if (entry.isSymbolicLink()) {
      const target = await readlink(path);
      if ((await follow(root, entry.parentPath, target, 0)) === undefined) throw refuse(`is a link outside the destination (to '${target}')`);
    } else if (!entry.isFile() && !entry.isDirectory()) {
      throw refuse('is a special file (device, FIFO or socket)');
    }
  }
}

/** Where `target`, read from a link in `from`, leads as the OS would follow it; undefined when it leaves `root` (or loops). */
async function follow(root: string, from: string, target: string, hops: number): Promise<string | undefined> {
  if (isAbsolute(target) || hops > 40) return undefined;
  let here = from;
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (here === root) return undefined;
      here = dirname(here);
      continue;
    }
    here = join(here, part);
    const stats = await lstat(here).catch(() => undefined);
    if (stats?.isSymbolicLink()) {
      const next = await follow(root, dirname(here), await readlink(here), hops + 1);
      if (next === undefined) return undefined;
      here = next;
    }
  }
  return here;
}

/** Runs a system tool with an argument list (no shell); returns its output unless `stdout` is a file descriptor. */
function run(command: string, args: readonly string[], stdout?: number): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', stdout ?? 'pipe', 'pipe'] });
    let output = '';
    let errors = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (errors = (errors + chunk).slice(-2000)));
    child.on('error', (error) => reject(new ArchiveError(`cannot run ${command}: ${error.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolvePromise(output);
      else reject(new ArchiveError(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${errors.trim()}`));
    });
  });
}
