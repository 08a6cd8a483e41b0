// Built artifacts (design.md §6): a built tree packed as a deterministic tar compressed with zstd and named
// by its CID, then extracted under any node's software root with the build prefix rewritten.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, mkdir, readdir, readlink, realpath, rename, rm } from 'node:fs/promises';
import { dirname, isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createZstdCompress } from 'node:zlib';
import { extractArchive } from '../../engine/install/archive.js';
import { hashFile } from './cid.js';
import { relocateTree } from './relocate.js';
import { tarStream, type TarEntry } from './tar.js';

export interface PackedArtifact {
  cid: string;
  size: number;
  /** sha256 (hex) of each 1 MiB chunk of the file, for verifying a fetch as it arrives. */
  chunks: string[];
  file: string;
}

/** A tree that cannot be packed: a special file, a link leading out of it, a file changing meanwhile. */
export class PackError extends Error {
  override name = 'PackError';
}

/**
 * Packs the tree at `dir` into `out` (written whole or not at all). The tar depends only on the contents:
 * entries sorted, times, owners and names zeroed; modes kept, since built trees need them. Links to
 * absolute paths inside the tree become relative (extraction refuses absolute ones, and relative ones hold
 * under any prefix); links leading out of the tree are refused.
 */
export async function packArtifact(dir: string, out: string): Promise<PackedArtifact> {
  dir = resolve(dir);
  out = resolve(out);
  await mkdir(dirname(out), { recursive: true });
  const temp = `${out}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const roots = [...new Set([dir, await realpath(dir)])];
    await pipeline(Readable.from(tarStream(treeEntries(dir, roots))), createZstdCompress(), createWriteStream(temp, { flags: 'wx' }));
    const hashed = await hashFile(temp);
    await rename(temp, out);
    return { ...hashed, file: out };
  } catch (error) {
    await rm(temp, { force: true });
    if (error instanceof PackError) throw error;
    throw new PackError(`cannot pack ${dir} into ${out}: ${(error as Error).message}`);
  }
}

/** The tree's entries, sorted by path; links checked (see linkTarget). */
async function* treeEntries(dir: string, roots: readonly string[]): AsyncGenerator<TarEntry> {
  // withFileTypes: without it, a recursive readdir follows links to folders.
  const paths = (await readdir(dir, { recursive: true, withFileTypes: true })).map((entry) => join(entry.parentPath, entry.name));
  for (const path of paths.sort()) {
    const name = relative(dir, path).split(sep).join('/');
    const stats = await lstat(path);
    const mode = stats.mode & 0o7777;
    if (stats.isDirectory()) {
      yield { path: name, type: 'Directory', mode, size: 0 };
    } else if (stats.isSymbolicLink()) {
      yield { path: name, type: 'SymbolicLink', mode, size: 0, linkpath: linkTarget(roots, name, await readlink(path)) };
    } else if (stats.isFile()) {
      yield { path: name, type: 'File', mode, size: stats.size, source: path };
    } else {
      throw new PackError(`cannot pack ${path}: only files, folders and links can be packed`);
    }
  }
}

/** The target to store for a link at `name` (relative to the tree), whose targets may not leave the tree. */
function linkTarget(roots: readonly string[], name: string, target: string): string {
  const refuse = () => new PackError(`cannot pack link ${name} -> ${target}: it leads out of the tree`);
  if (isAbsolute(target)) {
    const root = roots.find((root) => target === root || target.startsWith(`${root}/`));
    if (root === undefined) throw refuse();
    return relative(dirname(join(root, name)), target) || '.';
  }
  const normal = posix.normalize(posix.join(posix.dirname(name), target));
  if (normal === '..' || normal.startsWith('../')) throw refuse();
  return target;
}

/**
 * Extracts the artifact `file` into `destination`, which appears only complete: extracted beside it
 * (refusing unsafe archives: extractArchive), relocated from the prefix it was built under to `toPrefix`,
 * then renamed. Nothing is left behind on failure.
 */
export async function extractArtifact(file: string, destination: string, prefixes: { fromPrefix: string; toPrefix: string }): Promise<void> {
  await extractArchive(file, destination, {
    beforeMove: async (tree) => void (await relocateTree(tree, prefixes.fromPrefix, prefixes.toPrefix)),
  });
}
