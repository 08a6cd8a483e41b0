// One run of a task per key for all who want it at the same time: two deployments of one release on a host
// both need its bundle, and two downloads of one blob cannot both write it. A caller that gives up (its
// signal aborts) stops waiting; the task itself is aborted only once every caller has given up. What the task
// tells as it goes (its events: build steps, bytes downloaded) reaches every caller waiting at that moment.

type Listener<E> = (event: E) => void;

interface Job<T, E> {
  readonly promise: Promise<T>;
  readonly controller: AbortController;
  readonly listeners: Set<Listener<E>>;
  callers: number;
}

export class SharedWork<K, T, E = never> {
  /** Runs a caller may join. */
  private readonly jobs = new Map<K, Job<T, E>>();
  /** Every run until it settles, aborted ones included. */
  private readonly running = new Set<Promise<T>>();

  /**
   * `work(key's signal, emit)`'s outcome: a run already going for `key` is joined rather than started again.
   * `onEvent` hears what the run emits while this caller waits.
   */
  run(key: K, signal: AbortSignal, work: (signal: AbortSignal, emit: Listener<E>) => Promise<T>, onEvent?: Listener<E>): Promise<T> {
    signal.throwIfAborted();
    const job = this.jobs.get(key) ?? this.start(key, work);
    job.callers++;
    // A set holds a function once: each caller's listener is its own.
    const listener: Listener<E> | undefined = onEvent && ((event) => onEvent(event));
    if (listener) job.listeners.add(listener);
    return new Promise<T>((resolve, reject) => {
      let waiting = true;
      const leave = (): boolean => {
        if (!waiting) return false;
        waiting = false;
        job.callers--;
        if (listener) job.listeners.delete(listener);
        signal.removeEventListener('abort', onAbort);
        return true;
      };
      const onAbort = () => {
        if (!leave()) return;
        if (job.callers === 0) this.abort(key, job, signal.reason);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      job.promise.then((value) => leave() && resolve(value), (error: unknown) => leave() && reject(error));
    });
  }

  /** Settles once no run is going, the aborted ones having finished too (a stopping node waits for its cleanup). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  private start(key: K, work: (signal: AbortSignal, emit: Listener<E>) => Promise<T>): Job<T, E> {
    const controller = new AbortController();
    const listeners = new Set<Listener<E>>();
    const emit: Listener<E> = (event) => {
      for (const listener of listeners) listener(event);
    };
    const job: Job<T, E> = { controller, listeners, callers: 0, promise: Promise.resolve().then(() => work(controller.signal, emit)) };
    this.jobs.set(key, job);
    this.running.add(job.promise);
    const forget = () => {
      if (this.jobs.get(key) === job) this.jobs.delete(key);
      this.running.delete(job.promise);
    };
    job.promise.then(forget, forget);
    return job;
  }

  /** Nobody waits any more: the run stops, and a new caller starts afresh rather than joining a dying run. */
  private abort(key: K, job: Job<T, E>, reason: unknown): void {
    if (this.jobs.get(key) === job) this.jobs.delete(key);
    job.controller.abort(reason);
  }
}
