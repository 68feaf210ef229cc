// Retries a call that is safe to repeat (a send with its client_msg_id, a
// read) while the failure is the network's or the server's availability,
// never a refusal.

import { Backoff } from "./backoff";
import { isTransient } from "./errors";

export interface RetryOptions {
  attempts?: number;
  backoff?: Backoff;
  sleep?: (ms: number) => Promise<void>;
}

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function withRetry<T>(call: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 6;
  const backoff = options.backoff ?? new Backoff({ baseMs: 400, maxMs: 5_000 });
  const sleep = options.sleep ?? wait;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (attempt >= attempts || !isTransient(err)) throw err;
      await sleep(backoff.next());
    }
  }
}
