/**
 * A FIFO async mutex. One wa-sqlite module instance tolerates exactly one call in flight (an
 * overlapping Asyncify unwind corrupts its stack), so every call into an instance runs inside
 * `run`.
 */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  /** Calls queued or running; used to pick the least busy instance. */
  get load(): number {
    return this.waiting;
  }

  run<T>(task: () => Promise<T>): Promise<T> {
    const idle = this.waiting === 0;
    this.waiting++;
    // Idle (nothing queued or running, so the tail has settled): start now, not a turn later.
    const result = idle ? startNow(task) : this.tail.then(task);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.tail = settled;
    return result.finally(() => {
      this.waiting--;
    });
  }
}

function startNow<T>(task: () => Promise<T>): Promise<T> {
  try {
    return task();
  } catch (err) {
    return Promise.reject(err);
  }
}
