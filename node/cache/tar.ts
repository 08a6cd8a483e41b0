// Deterministic tar streams, for release bundles and built artifacts: the archive depends only on the
// entries given, in the order given — owners 0 without names, times 0. Headers are encoded by node-tar;
// the stream is written here, because node-tar's packer (even `portable`) keeps what the file system
// says (modes, hard links), which differs between two checkouts of the same tree.
import { createReadStream } from 'node:fs';
import { Header, Pax } from 'tar';

export interface TarEntry {
  /** Posix path relative to the archive's root (no trailing slash for folders). */
  path: string;
  type: 'File' | 'Directory' | 'SymbolicLink';
  mode: number;
  /** A file's size; 0 for the others. */
  size: number;
  /** Where a file's bytes are read from. */
  source?: string;
  linkpath?: string;
}

/** A file that could not be read, or changed while it was archived. */
export class TarSourceError extends Error {
  override name = 'TarSourceError';
}

const EPOCH = new Date(0);

/** The tar stream of `entries`; with `comment`, a global PAX comment comes first. */
export async function* tarStream(entries: Iterable<TarEntry> | AsyncIterable<TarEntry>, options: { comment?: string } = {}): AsyncGenerator<Buffer> {
  if (options.comment !== undefined) yield new Pax({ comment: options.comment }, true).encode();
  for await (const entry of entries) {
    const path = entry.type === 'Directory' ? `${entry.path}/` : entry.path;
    const header = new Header({
      path, type: entry.type, mode: entry.mode, size: entry.size, linkpath: entry.linkpath ?? '',
      uid: 0, gid: 0, uname: '', gname: '', mtime: EPOCH,
    });
    // What ustar cannot hold (long names, sizes of 8 GiB and more) goes in a PAX header of its own, with
    // nothing else from the file system.
    if (header.encode()) yield new Pax({ path, size: entry.size, ...(entry.linkpath ? { linkpath: entry.linkpath } : {}) }).encode();
    yield header.block!;
    if (entry.type === 'File') yield* fileBlocks(entry.source!, entry.size);
  }
  yield Buffer.alloc(1024);
}

/** A file's bytes padded to 512; it must still have the size its header announced. */
async function* fileBlocks(source: string, size: number): AsyncGenerator<Buffer> {
  let read = 0;
  try {
    for await (const chunk of createReadStream(source) as AsyncIterable<Buffer>) {
      read += chunk.length;
      if (read > size) break;
      yield chunk;
    }
  } catch (error) {
    throw new TarSourceError(`cannot read ${source}: ${(error as Error).message}`);
  }
  if (read !== size) throw new TarSourceError(`${source} changed while it was archived`);
  if (size % 512) yield Buffer.alloc(512 - (size % 512));
}
