// The thread of node/cache/chunk-writer.ts. For each download it checks each chunk against its hash, writes
// it to the partial file and adds it to the chunk hashes of what the file holds (from which complete()
// computes the CID: node/cache/cid.ts), in that order: those hashes always cover exactly the bytes the file
// holds. Each byte is hashed once. Whole chunks are written with direct I/O where the download has a file
// descriptor for it (node/cache/direct-write.ts). Requests are answered one at a time, in the order sent.
import { createHash, type Hash } from 'node:crypto';
import { fstatSync, readSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { WriterReply, WriterRequest } from './chunk-writer.js';
import { CHUNK_SIZE } from './cid.js';
import { DirectWriter } from './direct-write.js';

interface Download {
  fd: number;
  /** The same file opened with O_DIRECT, when the filesystem allows it. */
  directFd: number | undefined;
  /** The chunk hashes the bytes must match, when known. */
  expected: readonly string[] | undefined;
  /** Bytes of the file, all verified (where chunk hashes are known) and hashed. */
  written: number;
  /** sha256 (hex) of each whole chunk the file holds. */
  chunks: string[];
  /** The running hash of the bytes after the last whole chunk, if any. */
  tail: Hash | undefined;
}

const downloads = new Map<number, Download>();
const direct = new DirectWriter();
const sha256hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Adds bytes appended at the end of the file to its chunk hashes. */
function hashAppended(download: Download, data: Uint8Array): void {
  let at = download.written;
  while (data.byteLength > 0) {
    const take = Math.min(CHUNK_SIZE - (at % CHUNK_SIZE), data.byteLength);
    if (take === CHUNK_SIZE) {
      download.chunks.push(sha256hex(data.subarray(0, take)));
    } else {
      download.tail = (download.tail ?? createHash('sha256')).update(data.subarray(0, take));
      if ((at + take) % CHUNK_SIZE === 0) {
        download.chunks.push(download.tail.digest('hex'));
        download.tail = undefined;
      }
    }
    at += take;
    data = data.subarray(take);
  }
  download.written = at;
}

/** Keeps the leading bytes of the file that can be kept (see BlobStore.partial), hashing them. */
function open(fd: number, directFd: number | undefined, expected: readonly string[] | undefined): Download {
  const download: Download = { fd, directFd, expected, written: 0, chunks: [], tail: undefined };
  const { size } = fstatSync(fd);
  const buffer = Buffer.allocUnsafe(CHUNK_SIZE);
  while (download.written < size) {
    const bytesRead = readSync(fd, buffer, 0, Math.min(CHUNK_SIZE, size - download.written), download.written);
    if (bytesRead === 0) break;
    const data = buffer.subarray(0, bytesRead);
    if (expected) {
      const index = download.written / CHUNK_SIZE;
      // A short chunk can only be the last one.
      if (bytesRead < CHUNK_SIZE && index !== expected.length - 1) break;
      const hash = sha256hex(data);
      if (hash !== expected[index]) break;
      download.chunks.push(hash);
      download.written += bytesRead;
    } else {
      hashAppended(download, data);
    }
  }
  return download;
}

function append(download: Download, at: number, data: Uint8Array, verify: boolean): WriterReply['outcome'] {
  // An append made after one that failed: the file does not end where it was meant to go.
  if (at !== download.written) return 'abandoned';
  // A verified append is one whole chunk (appendStream cuts them so): its hash is the one checked.
  const checked = verify && download.expected ? sha256hex(data) : undefined;
  if (checked !== undefined && (at % CHUNK_SIZE !== 0 || checked !== download.expected![at / CHUNK_SIZE])) return 'mismatch';
  let done = download.directFd === undefined ? 0 : direct.write(download.directFd, data, at);
  while (done < data.byteLength) done += writeSync(download.fd, data, done, data.byteLength - done, at + done);
  if (checked !== undefined) {
    download.chunks.push(checked);
    download.written += data.byteLength;
  } else {
    hashAppended(download, data);
  }
  return 'written';
}

/** The hashes of the chunks the file holds, its last chunk included (an empty file is one empty chunk). */
function finish(download: Download): string[] {
  const chunks = [...download.chunks];
  if (download.tail) chunks.push(download.tail.digest('hex'));
  else if (chunks.length === 0) chunks.push(sha256hex(new Uint8Array(0)));
  return chunks;
}

/** The answer to a request; an append's gives its slot back. */
function answer(request: WriterRequest): WriterReply | undefined {
  const { id } = request;
  try {
    switch (request.op) {
      case 'open': {
        const download = open(request.fd, request.directFd, request.chunks);
        downloads.set(request.download, download);
        return { id, outcome: 'opened', kept: download.written };
      }
      case 'append': {
        const download = downloads.get(request.download);
        if (!download) throw new Error(`download ${request.download} is not open`);
        return { id, outcome: append(download, request.at, new Uint8Array(request.memory, 0, request.length), request.verify), slot: request.slot, memory: request.memory };
      }
      case 'finish': {
        const download = downloads.get(request.download);
        if (!download) throw new Error(`download ${request.download} is not open`);
        downloads.delete(request.download);
        return { id, outcome: 'finished', chunks: finish(download) };
      }
      case 'close':
        downloads.delete(request.download);
        return undefined;
    }
  } catch (error) {
    return { id, outcome: 'failed', message: (error as Error).message, ...(request.op === 'append' ? { slot: request.slot, memory: request.memory } : {}) };
  }
}

parentPort!.on('message', (request: WriterRequest) => {
  const reply = answer(request);
  // An append's memory goes back to the event loop (moved, not copied).
  if (reply) parentPort!.postMessage(reply, reply.memory ? [reply.memory] : []);
});
