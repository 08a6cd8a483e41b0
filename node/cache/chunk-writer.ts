// Verifying, writing and hashing a download's chunks off the event loop (design.md §6). The event loop of a
// fetching node also decrypts what arrives; in a profile of a 256 MiB fetch, hashing took a quarter of its
// time. Here a worker thread does, for each chunk: check it against its hash, write it to the partial file,
// keep its hash (from which the whole's CID is computed at the end) — in that order, so the hashes cover
// exactly what the file holds, and a chunk that fails is neither written nor kept. The event loop only
// copies what arrives into a slot (so the received buffers die young) and hands the slot's memory to the
// thread, which hands it back once done with it: the memory moves between threads (transferred), it is not
// shared. Shared memory (a SharedArrayBuffer) would cost here: V8 copies into it byte by byte whenever the
// source is not word-aligned, as pieces of a decrypted stream are (2 GB/s against 27 GB/s here: ≈ 0.2 s of
// event loop per 256 MiB). The slots bound the memory in flight and make a producer that runs ahead wait;
// each download holds at most one slot while it waits for bytes, so a stalled download holds up the others
// by no more than that one slot.
import { Worker } from 'node:worker_threads';
import { CHUNK_SIZE } from './cid.js';

/** Slots of CHUNK_SIZE bytes per thread: chunks in flight, to overlap receiving, hashing and writing. */
export const WRITER_SLOTS = 16;

/** What the thread is asked, without the id that pairs it with its answer. */
export type WriterCall =
  | { op: 'open'; download: number; fd: number; directFd: number | undefined; chunks: readonly string[] | undefined }
  | { op: 'append'; download: number; at: number; slot: number; memory: ArrayBuffer; length: number; verify: boolean }
  | { op: 'finish'; download: number }
  | { op: 'close'; download: number };
export type WriterRequest = WriterCall & { id: number };

export interface WriterReply {
  id: number;
  /** `abandoned`: not written, because the file does not end at `at` (an append before it failed). */
  outcome: 'opened' | 'written' | 'mismatch' | 'abandoned' | 'finished' | 'failed';
  kept?: number;
  /** `finished`: the sha256 (hex) of each chunk the file holds. */
  chunks?: string[];
  message?: string;
  /** An append's slot, free again, and its memory handed back. */
  slot?: number;
  memory?: ArrayBuffer;
}

export type AppendOutcome = 'written' | 'mismatch' | 'abandoned' | { failed: string };

/** The writer thread stopped (it should not). */
export class ChunkWriterThreadError extends Error {
  override name = 'ChunkWriterThreadError';
}

type Pending = { resolve: (reply: WriterReply) => void; reject: (error: Error) => void };

export class ChunkWriterThread {
  /** Each slot's memory; while a slot is with the thread, its entry is a detached buffer. */
  private readonly slots: Uint8Array[];
  private readonly free: number[];
  private readonly waiting: Array<(slot: number) => void> = [];
  private readonly calls = new Map<number, Pending>();
  private worker: Worker | undefined;
  private nextId = 1;
  private nextDownload = 1;

  /** The thread starts at the first call. */
  constructor(readonly slotCount = WRITER_SLOTS) {
    this.slots = Array.from({ length: slotCount }, () => new Uint8Array(CHUNK_SIZE));
    this.free = this.slots.map((_, i) => i);
  }

  /**
   * Starts writing a download to the open file `fd` (read and written; `directFd`, when given, is the same
   * file opened for writing with O_DIRECT): keeps its leading bytes that can be kept (with `chunks`, the
   * whole chunks that match, in order; without, all), hashing them. The caller truncates the file to
   * `kept`, and closes the descriptors only after the writer's last call settled.
   */
  async open(fd: number, chunks: readonly string[] | undefined, directFd?: number): Promise<DownloadWriter> {
    const download = this.nextDownload++;
    const reply = await this.call({ op: 'open', download, fd, directFd, chunks });
    if (reply.outcome !== 'opened') throw new Error(`cannot resume the download: ${reply.message}`);
    return new DownloadWriter(this, download, reply.kept!);
  }

  /** @internal A free slot (FIFO while none is free), and its memory. */
  async acquire(): Promise<Slot> {
    const index = this.free.pop() ?? await new Promise<number>((resolve) => this.waiting.push(resolve));
    return { index, space: this.slots[index]! };
  }

  /** @internal `memory`: the slot's memory, when it comes back from the thread. */
  freeSlot(slot: number, memory?: ArrayBuffer): void {
    if (memory) this.slots[slot] = new Uint8Array(memory);
    const next = this.waiting.shift();
    if (next) next(slot);
    else this.free.push(slot);
  }

  /** @internal Asks the thread, and waits for its answer. */
  call(call: Exclude<WriterCall, { op: 'close' }>): Promise<WriterReply> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.calls.size === 0) worker.ref(); // an answer is awaited: the process must not exit meanwhile
      this.calls.set(id, { resolve, reject: (error) => {
        // The thread stopped with the slot's memory: the slot gets new memory.
        if (call.op === 'append') this.freeSlot(call.slot, new ArrayBuffer(CHUNK_SIZE));
        reject(error);
      } });
      worker.postMessage({ ...call, id } satisfies WriterRequest, call.op === 'append' ? [call.memory] : []);
    });
  }

  /** @internal Tells the thread to forget a download (no answer). */
  forget(download: number): void {
    this.worker?.postMessage({ op: 'close', download, id: this.nextId++ } satisfies WriterRequest);
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./chunk-writer-worker.js', import.meta.url));
    worker.on('message', (reply: WriterReply) => {
      if (reply.slot !== undefined) this.freeSlot(reply.slot, reply.memory);
      const call = this.calls.get(reply.id);
      this.calls.delete(reply.id);
      if (this.calls.size === 0) worker.unref();
      call?.resolve(reply);
    });
    const fail = (error: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const call of this.calls.values()) call.reject(new ChunkWriterThreadError(`the chunk writer thread stopped: ${error.message}`, { cause: error }));
      this.calls.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit status ${code}`)));
    // An idle thread does not keep the process alive. After the listeners: adding a 'message' one refs it.
    worker.unref();
    this.worker = worker;
    return worker;
  }
}

/** A slot of the shared memory: CHUNK_SIZE bytes of `space` to copy a chunk into. */
export interface Slot {
  readonly index: number;
  readonly space: Uint8Array;
}

/** One download's side of the thread. */
export class DownloadWriter {
  private closed = false;

  constructor(private readonly thread: ChunkWriterThread, private readonly download: number, readonly kept: number) {}

  /** A free slot to fill (waits while none is), for append(), or release() when not appended. */
  slot(): Promise<Slot> {
    return this.thread.acquire();
  }

  release(slot: Slot): void {
    this.thread.freeSlot(slot.index);
  }

  /**
   * Writes the slot's first `length` bytes at byte `at` (checking them first against their chunk's hash
   * when `verify` and the hashes are known), then frees the slot. The thread takes appends in the order
   * made: one made before the file reaches `at` is `abandoned`.
   */
  async append(slot: Slot, length: number, at: number, verify: boolean): Promise<AppendOutcome> {
    const { outcome, message } = await this.thread.call({ op: 'append', download: this.download, at, slot: slot.index, memory: slot.space.buffer as ArrayBuffer, length, verify });
    if (outcome === 'written' || outcome === 'mismatch' || outcome === 'abandoned') return outcome;
    return { failed: message ?? outcome };
  }

  /** The chunk hashes of the bytes written (call it once every append settled); the writer is then closed. */
  async finish(): Promise<string[]> {
    this.closed = true;
    const reply = await this.thread.call({ op: 'finish', download: this.download });
    if (reply.outcome !== 'finished') throw new Error(`cannot hash the download: ${reply.message}`);
    return reply.chunks!;
  }

  /** Forgets the download (its appends already settled). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.thread.forget(this.download);
  }
}

let shared: ChunkWriterThread | undefined;

/** The process's chunk writer thread (started at its first use). */
export function chunkWriterThread(): ChunkWriterThread {
  return shared ??= new ChunkWriterThread();
}
