// Runs tasks one at a time per key (an instance's changes never interleave), tasks of other keys freely.
export class KeyedQueue<K = string> {
  private readonly tails = new Map<K, Promise<unknown>>();

  /** Runs `work` after the tasks of `key` queued before it settle (whatever their outcome). */
  run<T>(key: K, work: () => Promise<T>): Promise<T> {
    const next = (this.tails.get(key) ?? Promise.resolve()).then(work, work);
    const settled = next.catch(() => undefined);
    this.tails.set(key, settled);
    void settled.then(() => {
      if (this.tails.get(key) === settled) this.tails.delete(key);
    });
    return next;
  }

  /** The keys with a task queued or running. */
  keys(): K[] {
    return [...this.tails.keys()];
  }

  /** Settles once every task queued so far has. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.tails.values()]);
  }
}
