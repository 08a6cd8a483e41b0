// The buffers a listener sends a blob's body from, when the client acknowledges what it receives. libp2p
// keeps a sent buffer in its queues until the connection encrypts it, and does not tell the sender when, so a
// buffer can be filled again only once the client says it received what the buffer held; without that, every
// piece needs a fresh buffer, and over 256 MiB on loopback their allocation and collection slowed the whole
// transfer by about a tenth (docs/benchmarks.md). The buffers belong to one transfer and die with it: a client
// that acknowledges what it did not receive can only spoil its own transfer (which it verifies), never another's.

/** A client acknowledged more than was sent, or went back: it is not following the protocol. */
export class BadAcknowledgementError extends Error {
  override name = 'BadAcknowledgementError';
}

export class SendBuffers {
  private readonly buffers: Buffer[] = [];
  /** For each buffer, the body's length through the last piece it held: free once that much is received. */
  private readonly ends: number[] = [];
  private turn = 0;
  private sent = 0;
  private received = 0;
  private wake: (() => void) | undefined;

  /** `count` buffers of `size` bytes, allocated as they are first needed. */
  constructor(private readonly count: number, private readonly size: number) {}

  /**
   * A buffer for the next `length` bytes of the body (at most `size`), once the client received what it held
   * before; `wait` bounds that wait (it should reject when the client stays silent too long).
   */
  async take(length: number, wait: (free: Promise<void>) => Promise<void>): Promise<Buffer> {
    const turn = this.turn;
    this.turn = (turn + 1) % this.count;
    if (this.buffers.length < this.count) {
      this.buffers.push(Buffer.allocUnsafeSlow(this.size));
    } else if (this.received < this.ends[turn]!) {
      await wait(this.until(this.ends[turn]!));
    }
    this.sent += length;
    this.ends[turn] = this.sent;
    return this.buffers[turn]!.subarray(0, length);
  }

  /** The client says it received `bytes` of the body. */
  acknowledge(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < this.received || bytes > this.sent) {
      throw new BadAcknowledgementError(`acknowledged ${bytes} bytes, with ${this.received} acknowledged before and ${this.sent} sent`);
    }
    this.received = bytes;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async until(bytes: number): Promise<void> {
    while (this.received < bytes) await new Promise<void>((resolve) => (this.wake = resolve));
  }
}
