// The thread of node/cache/chunk-writer.ts. For each download it checks each chunk against its hash, writes
// it to the partial file and adds it to the running sha256 of the whole, in that order: the whole's hash
// always covers exactly the bytes the file holds. Requests are answered one at a time, in the order sent.
import { createHash, type Hash } from 'node:crypto';
import { fstatSync, readSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { WriterReply, WriterRequest } from './chunk-writer.js';
import { CHUNK_SIZE } from './cid.js';

interface Download {
  fd: number;
  chunks: readonly string[] | undefined;
  /** Bytes of the file, all verified (where chunk hashes are known) and in `whole`. */
  written: number;
  whole: Hash;
}

const downloads = new Map<number, Download>();
const sha256hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Keeps the leading bytes of the file that can be kept (see BlobStore.partial), hashing them into the whole. */
function open(fd: number, chunks: readonly string[] | undefined): Download {
  const download: Download = { fd, chunks, written: 0, whole: createHash('sha256') };
  const { size } = fstatSync(fd);
  const buffer = Buffer.allocUnsafe(CHUNK_SIZE);
  while (download.written < size) {
    const bytesRead = readSync(fd, buffer, 0, Math.min(CHUNK_SIZE, size - download.written), download.written);
    if (bytesRead === 0) break;
    const data = buffer.subarray(0, bytesRead);
    if (chunks) {
      const index = download.written / CHUNK_SIZE;
      // A short chunk can only be the last one.
      if (bytesRead < CHUNK_SIZE && index !== chunks.length - 1) break;
      if (sha256hex(data) !== chunks[index]) break;
    }
    download.whole.update(data);
    download.written += bytesRead;
  }
  return download;
}

function append(download: Download, at: number, data: Uint8Array, verify: boolean): WriterReply['outcome'] {
  // An append made after one that failed: the file does not end where it was meant to go.
  if (at !== download.written) return 'abandoned';
  if (verify && download.chunks && sha256hex(data) !== download.chunks[at / CHUNK_SIZE]) return 'mismatch';
  let done = 0;
  while (done < data.byteLength) done += writeSync(download.fd, data, done, data.byteLength - done, at + done);
  download.whole.update(data);
  download.written += data.byteLength;
  return 'written';
}

/** The answer to a request; an append's gives its slot back. */
function answer(request: WriterRequest): WriterReply | undefined {
  const { id } = request;
  try {
    switch (request.op) {
      case 'open': {
        const download = open(request.fd, request.chunks);
        downloads.set(request.download, download);
        return { id, outcome: 'opened', kept: download.written };
      }
      case 'append': {
        const download = downloads.get(request.download);
        if (!download) throw new Error(`download ${request.download} is not open`);
        return { id, outcome: append(download, request.at, new Uint8Array(request.memory, 0, request.length), request.verify), slot: request.slot, memory: request.memory };
      }
      case 'digest': {
        const download = downloads.get(request.download);
        if (!download) throw new Error(`download ${request.download} is not open`);
        downloads.delete(request.download);
        return { id, outcome: 'digest', digest: new Uint8Array(download.whole.digest()) };
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
