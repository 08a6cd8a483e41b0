// Writing downloaded chunks with direct I/O (O_DIRECT), past the page cache. A buffered write copies each
// byte into the page cache, and a download of new bytes needs new pages for them. On a virtual machine that
// hands free memory back to its host (as these do, about two seconds after it is freed), every such page
// is a fault to the host: in bench:cache, writing 256 MiB cost the writer thread 0.3–0.5 s of CPU, against
// 0.04 s while freed pages were still warm, on 2 cores where that CPU is what the transfer needs. A direct
// write moves the bytes from our own buffer to the disk, touching no new memory. The file must be opened
// with O_DIRECT, and the buffer's address, the length and the file offset must be aligned: the lengths and
// offsets of whole chunks are; the buffer is a staging one whose aligned start is found once by trying.
// Whatever cannot be written directly (a short last chunk, a resume between chunk boundaries) the caller
// writes through the page cache; the kernel keeps the two coherent.
import { writeSync } from 'node:fs';
import { CHUNK_SIZE } from './cid.js';

/** Offsets and lengths written directly are multiples of this (a page; disks ask for 512 or 4096 bytes). */
export const DIRECT_ALIGNMENT = 4096;
/** The step of the search for an aligned start: allocators align memory to at least this. */
const ALLOCATION_ALIGNMENT = 8;

export class DirectWriter {
  /** CHUNK_SIZE bytes that start at an address the disk accepts, once found. */
  private staging: Uint8Array | undefined;
  /** No aligned start was found: the filesystem asks for more than DIRECT_ALIGNMENT, or refuses direct writes. */
  private unusable = false;

  /**
   * Writes the leading whole DIRECT_ALIGNMENT blocks of `data` at `at` to `fd` (opened with O_DIRECT), and
   * returns how many bytes it wrote: 0 when none could be written directly (the offset is not aligned, or
   * `data` is shorter than a block); the caller writes the rest through the page cache.
   */
  write(fd: number, data: Uint8Array, at: number): number {
    const length = Math.min(data.byteLength - (data.byteLength % DIRECT_ALIGNMENT), CHUNK_SIZE);
    if (this.unusable || length === 0 || at % DIRECT_ALIGNMENT !== 0) return 0;
    for (;;) {
      const fresh = this.staging === undefined;
      const staging = this.staging ?? this.findAlignedStaging(fd, data, at);
      if (!staging) return 0;
      staging.set(data.subarray(0, length));
      try {
        return writeSync(fd, staging, 0, length, at);
      } catch (error) {
        // A start found on a disk that asks for less alignment than this file's (512 against 4096 bytes):
        // look again on this one; what it accepts, the other does too.
        if (fresh || (error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
        this.staging = undefined;
      }
    }
  }

  /**
   * Tries each start in a buffer one block longer than a chunk until a direct write of `data`'s first block
   * from there succeeds (the kernel refuses a misaligned buffer with EINVAL). The block it writes is the
   * right one, at its place, so nothing is written that should not be.
   */
  private findAlignedStaging(fd: number, data: Uint8Array, at: number): Uint8Array | undefined {
    const memory = new Uint8Array(CHUNK_SIZE + DIRECT_ALIGNMENT);
    for (let start = 0; start < DIRECT_ALIGNMENT; start += ALLOCATION_ALIGNMENT) {
      memory.set(data.subarray(0, DIRECT_ALIGNMENT), start);
      try {
        writeSync(fd, memory, start, DIRECT_ALIGNMENT, at);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EINVAL') continue;
        throw error;
      }
      return this.staging = memory.subarray(start, start + CHUNK_SIZE);
    }
    this.unusable = true;
    return undefined;
  }
}
