// The model's clock: events in virtual time, in a binary heap (O(log n) per event, for millions of them).
// Events at the same time run in the order they were scheduled, so a run is deterministic.

interface Event {
  at: number;
  seq: number;
  fire: () => void;
}

export class EventQueue {
  private readonly heap: Event[] = [];
  private seq = 0;
  /** Virtual time of the event running now, ms. */
  now = 0;
  /** Events run so far. */
  fired = 0;

  get size(): number {
    return this.heap.length;
  }

  /** Runs `fire` `delayMs` from now (never in the past). */
  after(delayMs: number, fire: () => void): void {
    this.push({ at: this.now + Math.max(0, delayMs), seq: this.seq++, fire });
  }

  /** Runs the next event; false when there is none. */
  step(): boolean {
    const next = this.pop();
    if (!next) return false;
    this.now = next.at;
    this.fired++;
    next.fire();
    return true;
  }

  private push(event: Event): void {
    const heap = this.heap;
    let at = heap.length;
    heap.push(event);
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!earlier(event, heap[parent]!)) break;
      heap[at] = heap[parent]!;
      at = parent;
    }
    heap[at] = event;
  }

  private pop(): Event | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let at = 0;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && earlier(heap[right]!, heap[left]!) ? right : left;
      if (!earlier(heap[child]!, last)) break;
      heap[at] = heap[child]!;
      at = child;
    }
    heap[at] = last;
    return top;
  }
}

function earlier(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
