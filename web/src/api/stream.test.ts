import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { EventSchema, type Event } from "../gen/switchboard/v1/switchboard_pb";
import { Backoff } from "./backoff";
import { LiveStream, type ConnectionState, type SubscribeArgs } from "./stream";

/** A scripted Subscribe: each call is one connection the test feeds events to. */
class FakeServer {
  calls: { args: SubscribeArgs; push(event: Event): void; fail(err: unknown): void; end(): void }[] = [];

  open = (args: SubscribeArgs, signal: AbortSignal): AsyncIterable<Event> => {
    const queue: (Event | { error: unknown } | "end")[] = [];
    let wake: (() => void) | undefined;
    const poke = () => wake?.();
    signal.addEventListener("abort", poke);
    this.calls.push({
      args,
      push: (event) => (queue.push(event), poke()),
      fail: (error) => (queue.push({ error }), poke()),
      end: () => (queue.push("end"), poke()),
    });
    return (async function* () {
      for (;;) {
        if (signal.aborted) throw new ConnectError("aborted", Code.Canceled);
        const next = queue.shift();
        if (next === undefined) {
          await new Promise<void>((resolve) => (wake = resolve));
          continue;
        }
        if (next === "end") return;
        if ("error" in next) throw next.error;
        yield next;
      }
    })();
  };
}

const ready = (heartbeatIntervalMs = 1000) =>
  create(EventSchema, { kind: { case: "ready", value: { epoch: "e1", gatewayId: "gw0", heartbeatIntervalMs } } });
const synced = () => create(EventSchema, { kind: { case: "synced", value: {} } });
const heartbeat = () => create(EventSchema, { kind: { case: "heartbeat", value: {} } });
const reconnect = (retryAfterMs: number) =>
  create(EventSchema, { kind: { case: "reconnect", value: { reason: "draining", retryAfterMs } } });

function setup() {
  const server = new FakeServer();
  const states: ConnectionState[] = [];
  const events: string[] = [];
  let cursors: SubscribeArgs = { epoch: "", cursors: [] };
  const authLost: string[] = [];
  const stream = new LiveStream(
    server.open,
    {
      resumeFrom: () => cursors,
      onEvent: (event) => events.push(event.kind.case ?? "?"),
      onState: (state) => states.push(state),
      onAuthLost: (message) => authLost.push(message),
    },
    { backoff: new Backoff({ baseMs: 1000, maxMs: 8000, random: () => 0 }), random: () => 0 },
  );
  return {
    server,
    states,
    events,
    authLost,
    stream,
    setCursors: (next: SubscribeArgs) => (cursors = next),
    phase: () => states[states.length - 1]?.phase,
  };
}

describe("LiveStream", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("reconnects after a failure, resuming from the cursors held then", async () => {
    const t = setup();
    t.stream.start();
    await vi.advanceTimersByTimeAsync(0);
    t.server.calls[0]!.push(ready());
    t.server.calls[0]!.push(synced());
    await vi.advanceTimersByTimeAsync(0);
    expect(t.phase()).toBe("live");

    t.setCursors({ epoch: "e1", cursors: [{ conversationId: "g:one", seq: 7 }] });
    t.server.calls[0]!.fail(new ConnectError("gateway gone", Code.Unavailable));
    await vi.advanceTimersByTimeAsync(0);
    expect(t.phase()).toBe("waiting");
    expect(t.server.calls).toHaveLength(1);

    await vi.advanceTimersByTimeAsync(500);
    expect(t.server.calls).toHaveLength(2);
    expect(t.server.calls[1]!.args).toEqual({ epoch: "e1", cursors: [{ conversationId: "g:one", seq: 7 }] });
    t.stream.stop();
  });

  it("backs off further on each failed attempt and starts over once synced", async () => {
    const t = setup();
    t.stream.start();
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      await vi.advanceTimersByTimeAsync(0);
      t.server.calls[i]!.fail(new TypeError("Failed to fetch"));
      await vi.advanceTimersByTimeAsync(0);
      const state = t.states[t.states.length - 1]!;
      if (state.phase !== "waiting") throw new Error("not waiting");
      delays.push(state.retryAtMs - Date.now());
      await vi.advanceTimersByTimeAsync(state.retryAtMs - Date.now());
    }
    expect(delays).toEqual([500, 1000, 2000]);

    t.server.calls[3]!.push(ready());
    t.server.calls[3]!.push(synced());
    await vi.advanceTimersByTimeAsync(0);
    t.server.calls[3]!.fail(new ConnectError("gone", Code.Unavailable));
    await vi.advanceTimersByTimeAsync(0);
    const state = t.states[t.states.length - 1]!;
    expect(state.phase === "waiting" && state.retryAtMs - Date.now()).toBe(500);
    t.stream.stop();
  });

  it("treats three silent heartbeat intervals as a dead connection", async () => {
    const t = setup();
    t.stream.start();
    await vi.advanceTimersByTimeAsync(0);
    t.server.calls[0]!.push(ready(1000));
    t.server.calls[0]!.push(synced());
    await vi.advanceTimersByTimeAsync(2500);
    t.server.calls[0]!.push(heartbeat());
    await vi.advanceTimersByTimeAsync(2500);
    expect(t.phase()).toBe("live");

    await vi.advanceTimersByTimeAsync(600);
    const state = t.states[t.states.length - 1]!;
    expect(state).toMatchObject({ phase: "waiting", reason: "no heartbeat for 3 s" });
    await vi.advanceTimersByTimeAsync(500);
    expect(t.server.calls).toHaveLength(2);
    t.stream.stop();
  });

  it("reconnects when the gateway says it is draining", async () => {
    const t = setup();
    t.stream.start();
    await vi.advanceTimersByTimeAsync(0);
    t.server.calls[0]!.push(ready());
    t.server.calls[0]!.push(synced());
    t.server.calls[0]!.push(reconnect(100));
    await vi.advanceTimersByTimeAsync(0);
    expect(t.events).toEqual(["ready", "synced", "reconnect"]);
    expect(t.phase()).toBe("waiting");
    await vi.advanceTimersByTimeAsync(100);
    expect(t.server.calls).toHaveLength(2);
    t.stream.stop();
  });

  it("stops for good when the session is no longer valid", async () => {
    const t = setup();
    t.stream.start();
    await vi.advanceTimersByTimeAsync(0);
    t.server.calls[0]!.fail(new ConnectError("session expired", Code.Unauthenticated));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.authLost).toEqual(["Session expired."]);
    expect(t.phase()).toBe("stopped");
    expect(t.server.calls).toHaveLength(1);
  });

  it("connects again at once when asked (the browser came back online)", async () => {
    const t = setup();
    t.stream.start();
    await vi.advanceTimersByTimeAsync(0);
    for (let i = 0; i < 4; i++) {
      t.server.calls[i]!.fail(new TypeError("Failed to fetch"));
      await vi.advanceTimersByTimeAsync(0);
      if (i < 3) await vi.advanceTimersByTimeAsync(10_000);
    }
    expect(t.server.calls).toHaveLength(4);
    t.stream.reconnectNow();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.server.calls).toHaveLength(5);
    t.stream.stop();
  });
});
