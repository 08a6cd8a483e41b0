// Moving a built tree from the prefix it was built under to another one (design.md §6). Builds run under a
// long padded prefix so that binaries, whose strings cannot grow, have room for any shorter prefix: text
// files get the new prefix as it is; in binaries each NUL-terminated string holding the old prefix is
// rewritten in place and padded with NULs to its old length, so that every offset stays valid (as conda does).
import { chmod, lstat, open, readdir, readFile, readlink, rename, symlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Length in bytes of a build prefix (characters, for ASCII paths): room for any software root shorter than it. */
export const BUILD_PREFIX_LENGTH = 160;
const PADDING = '_slapmesh_build_prefix';

/** A tree that cannot be moved to the prefix asked for. */
export class RelocationError extends Error {
  override name = 'RelocationError';
}

/** `base` followed by a padding folder name, so that the whole is exactly BUILD_PREFIX_LENGTH bytes long. */
export function paddedPrefix(base: string): string {
  const head = `${base.replace(/\/+$/, '')}/${PADDING}`;
  const room = BUILD_PREFIX_LENGTH - Buffer.byteLength(head);
  if (room < 0) {
    throw new RelocationError(`build prefix base ${base} is too long (at most ${BUILD_PREFIX_LENGTH - PADDING.length - 1} bytes)`);
  }
  return head + '_'.repeat(room);
}

/**
 * Rewrites `fromPrefix` into `toPrefix` in every file and link of the tree at `dir`, in place (the tree is
 * expected to be unused, as a freshly extracted one is: on error it is left part-rewritten). Files without
 * the prefix are not written. Returns how many files and links were read, and how many were changed.
 */
export async function relocateTree(dir: string, fromPrefix: string, toPrefix: string): Promise<{ files: number; rewritten: number }> {
  if (!fromPrefix) throw new RelocationError('cannot relocate from an empty prefix');
  if (fromPrefix === toPrefix) return { files: 0, rewritten: 0 }; // used where it was built: nothing to read
  const from = Buffer.from(fromPrefix);
  const to = Buffer.from(toPrefix);
  let files = 0;
  let rewritten = 0;
  // withFileTypes: without it, a recursive readdir follows links to folders (Node 24).
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    let changed: boolean;
    if (entry.isFile()) changed = await rewriteFile(path, from, to);
    else if (entry.isSymbolicLink()) changed = await repoint(path, fromPrefix, toPrefix);
    else continue;
    files += 1;
    if (changed) rewritten += 1;
  }
  return { files, rewritten };
}

/** One whole file in memory at a time: a search with indexOf is far faster than scanning a stream in JS. */
async function rewriteFile(path: string, from: Buffer, to: Buffer): Promise<boolean> {
  const data = await readFile(path);
  let at = data.indexOf(from);
  if (at < 0) return false;
  if (data.indexOf(0) < 0) {
    const text = replaceAll(data, from, to);
    await patch(path, [{ offset: 0, bytes: text }], text.length);
    return true;
  }
  if (to.length > from.length) {
    throw new RelocationError(`cannot relocate ${path}: it is a binary file, and the new prefix ${to} is longer than ${from}`);
  }
  const patches: Patch[] = [];
  while (at >= 0) {
    let end = data.indexOf(0, at);
    if (end < 0) end = data.length;
    const string = replaceAll(data.subarray(at, end), from, to);
    patches.push({ offset: at, bytes: Buffer.concat([string, Buffer.alloc(end - at - string.length)]) });
    at = data.indexOf(from, end);
  }
  await patch(path, patches);
  return true;
}

function replaceAll(data: Buffer, from: Buffer, to: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let at = data.indexOf(from); at >= 0; at = data.indexOf(from, start)) {
    parts.push(data.subarray(start, at), to);
    start = at + from.length;
  }
  parts.push(data.subarray(start));
  return Buffer.concat(parts);
}

interface Patch {
  offset: number;
  bytes: Buffer;
}

/**
 * Writes into the file itself, which keeps its inode (hard links see the change once), its owner and its
 * mode. Built trees hold read-only files: they are made writable for the time of the write. The mode is set
 * again after it, since a write by a non-root user clears the setuid and setgid bits.
 */
async function patch(path: string, patches: readonly Patch[], length?: number): Promise<void> {
  const mode = (await lstat(path)).mode & 0o7777;
  if (!(mode & 0o200)) await chmod(path, mode | 0o200);
  try {
    const file = await open(path, 'r+');
    try {
      for (const { offset, bytes } of patches) await file.write(bytes, 0, bytes.length, offset);
      if (length !== undefined) await file.truncate(length);
    } finally {
      await file.close();
    }
  } finally {
    await chmod(path, mode);
  }
}

async function repoint(path: string, fromPrefix: string, toPrefix: string): Promise<boolean> {
  const target = await readlink(path);
  if (!target.startsWith(fromPrefix)) return false;
  // A new link renamed over the old one: the link is never missing.
  const temp = `${path}.relocating-${process.pid}`;
  await symlink(toPrefix + target.slice(fromPrefix.length), temp);
  await rename(temp, path);
  return true;
}
