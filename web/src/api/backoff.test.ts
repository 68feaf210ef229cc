import { describe, expect, it } from "vitest";

import { Backoff } from "./backoff";

describe("Backoff", () => {
  it("doubles up to the cap, each delay between half and all of its ceiling", () => {
    const low = new Backoff({ baseMs: 500, maxMs: 4000, random: () => 0 });
    const high = new Backoff({ baseMs: 500, maxMs: 4000, random: () => 0.999999 });
    const lows = Array.from({ length: 6 }, () => low.next());
    const highs = Array.from({ length: 6 }, () => high.next());
    expect(lows).toEqual([250, 500, 1000, 2000, 2000, 2000]);
    expect(highs).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
  });

  it("starts small again after a reset", () => {
    const backoff = new Backoff({ baseMs: 100, maxMs: 10_000, random: () => 0.5 });
    backoff.next();
    backoff.next();
    backoff.next();
    expect(backoff.attempt).toBe(3);
    backoff.reset();
    expect(backoff.attempt).toBe(0);
    expect(backoff.next()).toBe(75);
  });

  it("jitters: two pages that failed together retry at different times", () => {
    let seed = 1;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    const a = new Backoff({ baseMs: 1000, maxMs: 30_000, random });
    const b = new Backoff({ baseMs: 1000, maxMs: 30_000, random });
    const delaysA = [a.next(), a.next(), a.next()];
    const delaysB = [b.next(), b.next(), b.next()];
    expect(delaysA).not.toEqual(delaysB);
  });

  it("never overflows after many failures", () => {
    const backoff = new Backoff({ baseMs: 1000, maxMs: 15_000, random: () => 0.5 });
    for (let i = 0; i < 200; i++) backoff.next();
    expect(backoff.next()).toBe(11_250);
  });
});
