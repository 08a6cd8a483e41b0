// The node's blobs (release bundles, built artifacts), named by CID, in a folder (`<dataDir>/cache`):
//   blobs/<cid>    complete blobs, read-only (0444); only ever appear by an atomic rename
//   partial/<cid>  downloads in progress, resumable
//   tmp/           files being written (emptied by init())
// The filesystem is the truth: a blob's size is its file's size and its last use its mtime (touched on each
// use), so eviction needs no database (design.md §6).
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { constants as fsConstants, type ReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, open, readdir, rename, rm, stat, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CHUNK_SIZE, chunkHash, cidOfDigest, hashFile, parseBlobCid } from './cid.js';

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

/** An open blob: its whole size, and its bytes from the offset asked for (destroy it if not read to the end). */
export interface BlobReader {
  size: number;
  stream: ReadStream;
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

  constructor(root: string) {
    this.root = root;
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
      return { size, stream: handle.createReadStream({ start: offset, highWaterMark: CHUNK_SIZE }) };
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
      if (!isCid(name)) continue; // not ours
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
    try {
      handle = await open(file, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
      const whole = createHash('sha256');
      const kept = await verifiedPrefix(handle, whole, options.chunks);
      await handle.truncate(kept);
      return new PartialBlob(cid, file, this.blobFile(cid), handle, whole, kept, () => this.writing.delete(cid));
    } catch (error) {
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

/** A download in progress: append verified bytes, then complete() or keep it for later (close()). */
export class PartialBlob {
  private closed = false;

  constructor(
    readonly cid: string,
    private readonly file: string,
    private readonly target: string,
    private readonly handle: FileHandle,
    /** sha256 of the bytes in the file so far. */
    private readonly whole: Hash,
    private written: number,
    private readonly release: () => void,
  ) {}

  /** How many bytes the file holds: where the download resumes. */
  get offset(): number {
    return this.written;
  }

  /** Appends bytes (already verified by the caller, where they can be). */
  async append(data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const buffers = data instanceof Uint8Array ? [data] : data;
    const length = buffers.reduce((sum, buffer) => sum + buffer.byteLength, 0);
    if (length === 0) return;
    const { bytesWritten } = await this.handle.writev(buffers as Uint8Array[], this.written);
    if (bytesWritten !== length) throw new Error(`short write to ${this.file}: ${bytesWritten} of ${length} bytes`);
    for (const buffer of buffers) this.whole.update(buffer);
    this.written += length;
  }

  /**
   * Checks the whole file against the CID and renames it into blobs/ (read-only, synced); returns its path.
   * On a mismatch the partial file is removed and BlobMismatchError thrown. The writer is closed either way.
   */
  async complete(): Promise<string> {
    const actual = cidOfDigest(this.whole.digest());
    if (actual !== this.cid) {
      await this.discard();
      throw new BlobMismatchError(`the ${this.written} bytes downloaded for ${this.cid} hash to ${actual}`);
    }
    try {
      await this.handle.chmod(0o444);
      await this.handle.datasync();
      await rename(this.file, this.target);
    } finally {
      await this.close();
    }
    return this.target;
  }

  /** Closes and removes the partial file. */
  async discard(): Promise<void> {
    await this.close();
    await rm(this.file, { force: true });
  }

  /** Closes the writer, keeping the partial file for a later resume. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.handle.close();
    } finally {
      this.release();
    }
  }
}

/** How many leading bytes of the file to keep (see BlobStore.partial); feeds them to `whole`. */
async function verifiedPrefix(handle: FileHandle, whole: Hash, chunks: readonly string[] | undefined): Promise<number> {
  const { size } = await handle.stat();
  const buffer = Buffer.allocUnsafe(CHUNK_SIZE);
  let kept = 0;
  while (kept < size) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(CHUNK_SIZE, size - kept), kept);
    if (bytesRead === 0) break;
    const data = buffer.subarray(0, bytesRead);
    if (chunks) {
      const index = kept / CHUNK_SIZE;
      // A short chunk can only be the last one.
      if (bytesRead < CHUNK_SIZE && index !== chunks.length - 1) break;
      if (chunkHash([data]) !== chunks[index]) break;
    }
    whole.update(data);
    kept += bytesRead;
  }
  return kept;
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

/** Flushes a file's data to disk, so that the rename that publishes it cannot outlive its bytes in a crash. */
async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** A name in canonical blob CID form. */
function isCid(name: string): boolean {
  try {
    return parseBlobCid(name) === name;
  } catch {
    return false;
  }
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}
