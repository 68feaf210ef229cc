// Jittered exponential backoff for reconnecting the stream and retrying sends.
// "Equal jitter": half of each delay is fixed, half random, so a crowd of
// pages that lost the same gateway does not come back in one wave, and no
// page retries in a tight loop.

export interface BackoffOptions {
  /** First delay's ceiling, in ms. */
  baseMs: number;
  /** No delay exceeds this, in ms. */
  maxMs: number;
  /** Returns a number in [0, 1); Math.random by default (tests pass their own). */
  random?: () => number;
}

export class Backoff {
  private failures = 0;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions) {
    this.random = options.random ?? Math.random;
  }

  /** How many delays were handed out since the last reset. */
  get attempt(): number {
    return this.failures;
  }

  /** The next delay, in ms; each call doubles the ceiling up to maxMs. */
  next(): number {
    const ceiling = Math.min(this.options.maxMs, this.options.baseMs * 2 ** this.failures);
    this.failures = Math.min(this.failures + 1, 30);
    const half = ceiling / 2;
    return Math.round(half + this.random() * half);
  }

  /** After a success: the next failure starts small again. */
  reset(): void {
    this.failures = 0;
  }
}
