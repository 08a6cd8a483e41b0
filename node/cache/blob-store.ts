// The node's blobs (release bundles, built artifacts), named by CID, in a folder (`<dataDir>/cache`):
//   blobs/<cid>    complete blobs, read-only (0444); only ever appear by an atomic rename
//   partial/<cid>  downloads in progress, resumable
//   tmp/           files being written (emptied by init())
// The filesystem is the truth: a blob's size is its file's size and its last use its mtime (touched on each
// use), so eviction needs no database (design.md §6).
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, type ReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, open, readdir, rename, rm, stat, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { blobCid, CHUNK_SIZE, hashFile, isBlobCid, parseBlobCid } from './cid.js';
import { chunkWriterThread, type ChunkWriterThread, type DownloadWriter, type Slot } from './chunk-writer.js';

/** A blob as listed: its size and when it was last used (ms since the epoch). */
export interface BlobInfo {
  cid: string;
  size: number;
  lastUsed: number;
}

/** What put() stored: the CID, the size, and the sha256 (hex) of each CHUNK_SIZE chunk. */
export interface PutResult {
  cid: string;
  size: number;
  chunks: string[];
}

/** An open blob: its whole size and its file, from the offset asked for (close the file, or use stream()). */
export interface BlobReader {
  size: number;
  offset: number;
  handle: FileHandle;
  /** Its bytes from `offset` as a stream, which closes the file (destroy it if not read to the end). */
  stream(): ReadStream;
}

export interface BlobStoreStats {
  blobs: number;
  bytes: number;
  partials: number;
  partialBytes: number;
}

/** A download's bytes do not hash to the CID they were fetched for (the partial file is gone). */
export class BlobMismatchError extends Error {
  override name = 'BlobMismatchError';
}

/** A chunk's bytes do not hash to what the cache entry says; nothing of it was kept. */
export class ChunkMismatchError extends Error {
  override name = 'ChunkMismatchError';

  constructor(readonly index: number) {
    super(`chunk ${index} does not match its hash`);
  }
}

/** An append made after one that failed: not kept either. */
export class AppendAbandonedError extends Error {
  override name = 'AppendAbandonedError';
}

/** Another writer has this CID's partial file open (in this process). */
export class PartialBusyError extends Error {
  override name = 'PartialBusyError';
}

export class BlobStore {
  readonly root: string;
  private readonly blobsDir: string;
  private readonly partialDir: string;
  private readonly tmpDir: string;
  /** CIDs whose partial file has a writer. */
  private readonly writing = new Set<string>();

  /** Verifies, writes and hashes downloads off the event loop (default: the process's, made at the first download). */
  private readonly writers: ChunkWriterThread | undefined;

  constructor(root: string, options: { writers?: ChunkWriterThread } = {}) {
    this.root = root;
    this.writers = options.writers;
    this.blobsDir = join(root, 'blobs');
    this.partialDir = join(root, 'partial');
    this.tmpDir = join(root, 'tmp');
  }

  /** Creates the folders and removes what a crash left in tmp/. */
  async init(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true });
    for (const dir of [this.blobsDir, this.partialDir, this.tmpDir]) await mkdir(dir, { recursive: true });
  }

  /** Stores a file's bytes under their CID: a copy, or the file itself with `move`. */
  async put(file: string, options: { move?: boolean } = {}): Promise<PutResult> {
    const tmp = this.tmpFile();
    try {
      if (options.move) await moveFile(file, tmp);
      else await copyFile(file, tmp);
      return await this.adopt(tmp);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async putBytes(bytes: Uint8Array): Promise<PutResult> {
    const tmp = this.tmpFile();
    try {
      await writeFile(tmp, bytes);
      return await this.adopt(tmp);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async has(cid: string): Promise<boolean> {
    return (await this.size(cid)) !== undefined;
  }

  /** The blob's file, if it is here. */
  async path(cid: string): Promise<string | undefined> {
    return (await this.size(cid)) === undefined ? undefined : this.blobFile(cid);
  }

  async size(cid: string): Promise<number | undefined> {
    try {
      return (await stat(this.blobFile(cid))).size;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  /** The blob's bytes from `offset` (undefined if absent); counts as a use. */
  async open(cid: string, offset = 0): Promise<BlobReader | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(this.blobFile(cid), 'r');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    try {
      const { size } = await handle.stat();
      if (!Number.isSafeInteger(offset) || offset < 0 || offset > size) throw new RangeError(`offset ${offset} is outside blob ${cid} of ${size} bytes`);
      const now = new Date();
      await handle.utimes(now, now);
      const file = handle;
      return { size, offset, handle, stream: () => file.createReadStream({ start: offset, highWaterMark: CHUNK_SIZE }) };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Marks a blob as used now (for LRU eviction). */
  async touch(cid: string): Promise<void> {
    const now = new Date();
    await utimes(this.blobFile(cid), now, now);
  }

  async list(): Promise<BlobInfo[]> {
    const blobs: BlobInfo[] = [];
    for (const name of await readdir(this.blobsDir)) {
      if (!isBlobCid(name)) continue; // not ours
      try {
        const info = await stat(join(this.blobsDir, name));
        blobs.push({ cid: name, size: info.size, lastUsed: info.mtimeMs });
      } catch (error) {
        if (!isMissing(error)) throw error; // removed meanwhile
      }
    }
    return blobs;
  }

  /** Removes a blob; false if it was not here. */
  async remove(cid: string): Promise<boolean> {
    try {
      await rm(this.blobFile(cid));
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }

  /** Evicts the least recently used blobs, except those in `keep`, until all blobs fit in `quotaBytes`. */
  async gc(quotaBytes: number, keep: ReadonlySet<string> = new Set()): Promise<BlobInfo[]> {
    const blobs = (await this.list()).sort((a, b) => a.lastUsed - b.lastUsed);
    let total = blobs.reduce((sum, blob) => sum + blob.size, 0);
    const evicted: BlobInfo[] = [];
    for (const blob of blobs) {
      if (total <= quotaBytes) break;
      if (keep.has(blob.cid)) continue;
      if (await this.remove(blob.cid)) evicted.push(blob);
      total -= blob.size;
    }
    return evicted;
  }

  async stats(): Promise<BlobStoreStats> {
    const blobs = await this.list();
    let partials = 0;
    let partialBytes = 0;
    for (const name of await readdir(this.partialDir)) {
      partials++;
      partialBytes += (await stat(join(this.partialDir, name)).catch(() => ({ size: 0 }))).size;
    }
    return { blobs: blobs.length, bytes: blobs.reduce((sum, blob) => sum + blob.size, 0), partials, partialBytes };
  }

  /** Re-hashes every blob; removes and returns those whose bytes no longer match their CID. */
  async verify(): Promise<string[]> {
    const bad: string[] = [];
    for (const { cid } of await this.list()) {
      let actual: string;
      try {
        actual = (await hashFile(this.blobFile(cid))).cid;
      } catch (error) {
        if (isMissing(error)) continue;
        throw error;
      }
      if (actual === cid) continue;
      await this.remove(cid);
      bad.push(cid);
    }
    return bad;
  }

  /**
   * The writer of a download of `cid`, resuming what partial/<cid> holds. With `chunks` (the sha256 hex of
   * each CHUNK_SIZE chunk), it keeps only the prefix of whole chunks that match (a crash may leave a torn
   * chunk); without, it keeps the whole file and only complete()'s check applies.
   */
  async partial(cid: string, options: { chunks?: readonly string[] } = {}): Promise<PartialBlob> {
    cid = parseBlobCid(cid);
    if (this.writing.has(cid)) throw new PartialBusyError(`blob ${cid} is already being downloaded`);
    this.writing.add(cid);
    const file = join(this.partialDir, cid);
    let handle: FileHandle | undefined;
    let direct: FileHandle | undefined;
    let writer: DownloadWriter | undefined;
    try {
      handle = await open(file, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
      direct = await openDirect(file);
      writer = await (this.writers ?? chunkWriterThread()).open(handle.fd, options.chunks, direct?.fd);
      await handle.truncate(writer.kept);
      return new PartialBlob({ cid, file, target: this.blobFile(cid), handle, direct, writer, chunks: options.chunks, release: () => this.writing.delete(cid) });
    } catch (error) {
      writer?.close();
      await direct?.close();
      await handle?.close();
      this.writing.delete(cid);
      throw error;
    }
  }

  /** Hashes a file in tmp/ and renames it, read-only and synced, into blobs/. */
  private async adopt(tmp: string): Promise<PutResult> {
    const hashed = await hashFile(tmp);
    await chmod(tmp, 0o444);
    await syncFile(tmp);
    await rename(tmp, join(this.blobsDir, hashed.cid));
    return hashed;
  }

  private blobFile(cid: string): string {
    return join(this.blobsDir, parseBlobCid(cid));
  }

  private tmpFile(): string {
    return join(this.tmpDir, randomBytes(8).toString('hex'));
  }
}

/** Written bytes beyond this many unsynced start a sync in the background, so that complete()'s is short. */
const SYNC_EVERY_BYTES = 16 * CHUNK_SIZE;
/** Chunks being hashed and written while the next arrive (fewer than the writer thread's slots). */
export const APPENDS_IN_FLIGHT = 12;

interface PartialBlobInit {
  cid: string;
  file: string;
  /** Where complete() renames the file. */
  target: string;
  handle: FileHandle;
  /** The file opened for direct writes, where its filesystem allows (node/cache/direct-write.ts). */
  direct: FileHandle | undefined;
  /** Verifies, writes and hashes the appends; knows how many bytes the file holds. */
  writer: DownloadWriter;
  chunks: readonly string[] | undefined;
  /** Lets another writer of this CID in. */
  release: () => void;
}

/**
 * A download in progress: append its bytes (each chunk verified first when the chunk hashes are known), then
 * complete(), or keep it for later (close()). Verifying, writing and hashing happen on the chunk writer
 * thread (node/cache/chunk-writer.ts), several chunks in flight at once; the file only ever holds a prefix
 * of verified chunks, and the chunk hashes kept cover exactly what it holds.
 */
export class PartialBlob {
  readonly cid: string;
  private readonly init: PartialBlobInit;
  private written: number;
  private appending = false;
  private synced: number;
  private syncing: Promise<void> | undefined;
  private syncError: Error | undefined;
  private closed = false;

  constructor(init: PartialBlobInit) {
    this.init = init;
    this.cid = init.cid;
    this.written = this.synced = init.writer.kept;
  }

  /** How many bytes the file holds (appends in flight not counted): where the download resumes. */
  get offset(): number {
    return this.written;
  }

  /** Appends bytes as they are (already verified by the caller, where they can be); resolves once written. */
  async append(data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const buffers = data instanceof Uint8Array ? [data] : data;
    await this.appendStream(buffers, { verify: false });
  }

  /**
   * Appends a byte stream, cut into chunks on chunk boundaries; with chunk hashes (and `verify`, the default)
   * each chunk is kept only if it matches its hash (else ChunkMismatchError, from that chunk on). Each
   * piece is copied at once into the writer thread's memory (so the source's buffers die young); up to
   * `inFlight` chunks are hashed and written while the next arrive; `onAppended` is told where the file ends
   * after each. Settles once every chunk in flight has: `offset` is then where the file ends. One append at a
   * time.
   */
  async appendStream(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: { verify?: boolean; inFlight?: number; onAppended?: (offset: number) => void } = {}): Promise<void> {
    if (this.closed) throw new Error(`the download of ${this.cid} is closed`);
    if (this.appending) throw new Error(`the download of ${this.cid} is already being appended to`);
    this.appending = true;
    const { writer } = this.init;
    const verify = (options.verify ?? true) && this.init.chunks !== undefined;
    const inFlight = options.inFlight ?? APPENDS_IN_FLIGHT;
    const appends: Promise<void>[] = [];
    let slot: Slot | undefined;
    let filled = 0;
    let at = this.written;
    try {
      if (verify && at % CHUNK_SIZE !== 0) throw new RangeError(`byte ${at} is not on a chunk boundary`);
      const send = async () => {
        const appended = this.appendSlot(slot!, filled, at, verify, options.onAppended);
        appended.catch(() => undefined); // awaited in order: the first failure is the one that counts
        appends.push(appended);
        at += filled;
        slot = undefined;
        filled = 0;
        if (appends.length > inFlight) await appends.shift();
      };
      for await (let data of source) {
        while (data.byteLength > 0) {
          slot ??= await writer.slot();
          // Up to the next chunk boundary (a download resumed without chunk hashes may start between two).
          const take = Math.min(CHUNK_SIZE - ((at + filled) % CHUNK_SIZE), data.byteLength);
          slot.space.set(take === data.byteLength ? data : data.subarray(0, take), filled);
          filled += take;
          data = data.subarray(take);
          if ((at + filled) % CHUNK_SIZE === 0) await send();
        }
      }
      if (filled > 0) await send();
      while (appends.length > 0) await appends.shift();
    } finally {
      if (slot !== undefined) writer.release(slot);
      await Promise.allSettled(appends);
      this.appending = false;
    }
  }

  /** Hands a filled slot to the writer thread, and keeps `written` (what the file holds) up to date. */
  private async appendSlot(slot: Slot, length: number, at: number, verify: boolean, onAppended?: (offset: number) => void): Promise<void> {
    const outcome = await this.init.writer.append(slot, length, at, verify);
    if (outcome === 'written') {
      this.written = at + length;
      this.syncInBackground();
      onAppended?.(this.written);
    } else if (outcome === 'mismatch') throw new ChunkMismatchError(at / CHUNK_SIZE);
    else if (outcome === 'abandoned') throw new AppendAbandonedError(`${length} bytes at ${at} not appended to ${this.cid}: an earlier append failed`);
    else throw new Error(`cannot append to ${this.init.file}: ${outcome.failed}`);
  }

  /** Starts a sync of what was written since the last one, when that is much and none is running. */
  private syncInBackground(): void {
    if (this.syncing || this.written - this.synced < SYNC_EVERY_BYTES) return;
    const upTo = this.written;
    this.syncing = this.init.handle.datasync().then(() => {
      this.synced = upTo;
    }, (error: Error) => {
      this.syncError ??= error;
    }).finally(() => {
      this.syncing = undefined;
    });
  }

  /** Waits until no sync is running (the file must not be closed under one). */
  private async settled(): Promise<void> {
    while (this.syncing) await this.syncing;
  }

  /**
   * Checks the whole file against the CID and renames it into blobs/ (read-only, synced); returns its path.
   * On a mismatch the partial file is removed and BlobMismatchError thrown. The writer is closed either way.
   */
  async complete(): Promise<string> {
    try {
      await this.settled();
      const actual = blobCid(this.written, await this.init.writer.finish());
      if (actual !== this.cid) {
        await this.discard();
        throw new BlobMismatchError(`the ${this.written} bytes downloaded for ${this.cid} hash to ${actual}`);
      }
      if (this.syncError) throw this.syncError;
      await this.init.handle.chmod(0o444);
      await this.init.handle.datasync();
      await rename(this.init.file, this.init.target);
    } finally {
      await this.close();
    }
    return this.init.target;
  }

  /** Closes and removes the partial file. */
  async discard(): Promise<void> {
    await this.close();
    await rm(this.init.file, { force: true });
  }

  /** Closes the writer (once the appends in flight settle), keeping the partial file for a later resume. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.settled();
      this.init.writer.close();
      await this.init.direct?.close();
      await this.init.handle.close();
    } finally {
      this.init.release();
    }
  }
}

/** Renames, or copies then removes across filesystems. */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    await copyFile(from, to);
    await rm(from);
  }
}

/**
 * The file opened for writing with O_DIRECT, or undefined where that is not to be had: on systems without
 * the flag, and on filesystems that refuse it (EINVAL).
 */
async function openDirect(path: string): Promise<FileHandle | undefined> {
  if (fsConstants.O_DIRECT === undefined) return undefined;
  try {
    return await open(path, fsConstants.O_WRONLY | fsConstants.O_DIRECT);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw error;
  }
}

/** Flushes a file's data to disk, so that the rename that publishes it cannot outlive its bytes in a crash. */
async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}
