// The one live stream (ChatService.Subscribe), kept alive: it reconnects
// with jittered backoff when the network drops or the gateway goes away,
// resuming from the page's cursors (the server replays exactly what came
// after them), and treats a stream that stays silent for three heartbeat
// intervals as dead.

import type { Event } from "../gen/switchboard/v1/switchboard_pb";
import { Backoff } from "./backoff";
import { describeError, isUnauthenticated } from "./errors";

export type ConnectionState =
  /** Opening the stream (attempt 0 is the first connection). */
  | { phase: "connecting"; attempt: number }
  /** Ready received; replaying what was missed. */
  | { phase: "syncing"; gatewayId: string }
  | { phase: "live"; gatewayId: string }
  /** Lost; the next attempt is at retryAtMs. */
  | { phase: "waiting"; attempt: number; retryAtMs: number; reason: string }
  | { phase: "stopped"; reason: string };

export interface SubscribeArgs {
  epoch: string;
  cursors: { conversationId: string; seq: number }[];
}

/** Opens one Subscribe call (the app passes the gRPC-Web client; tests a fake). */
export type OpenStream = (args: SubscribeArgs, signal: AbortSignal) => AsyncIterable<Event>;

export interface StreamHandlers {
  /** The cursors to resume from, read at each (re)connect. */
  resumeFrom(): SubscribeArgs;
  /** Every event, in order (heartbeats included). */
  onEvent(event: Event): void;
  onState(state: ConnectionState): void;
  /** The session is no longer valid: the stream stops for good. */
  onAuthLost(message: string): void;
}

export interface StreamOptions {
  backoff?: Backoff;
  /** How long to wait for Ready before giving up on an attempt. */
  readyTimeoutMs?: number;
  /** Silent intervals after which the stream counts as dead. */
  missedBeats?: number;
  random?: () => number;
}

class Dead extends Error {
  override name = "Dead";
}

export class LiveStream {
  private stopped = false;
  private running = false;
  private controller?: AbortController;
  private wake?: () => void;
  private watchdog?: ReturnType<typeof setTimeout>;
  private readonly backoff: Backoff;
  private readonly readyTimeoutMs: number;
  private readonly missedBeats: number;
  private readonly random: () => number;
  private heartbeatMs = 15_000;
  private gatewayId = "";

  constructor(
    private readonly open: OpenStream,
    private readonly handlers: StreamHandlers,
    options: StreamOptions = {},
  ) {
    this.random = options.random ?? Math.random;
    this.backoff = options.backoff ?? new Backoff({ baseMs: 500, maxMs: 15_000, random: this.random });
    this.readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
    this.missedBeats = options.missedBeats ?? 3;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopped = false;
    void this.run();
  }

  stop(reason = "signed out"): void {
    this.stopped = true;
    this.clearWatchdog();
    this.controller?.abort();
    this.wake?.();
    this.handlers.onState({ phase: "stopped", reason });
  }

  /** Drop the current stream (if any) and connect again at once. */
  reconnectNow(): void {
    if (this.stopped) return;
    this.backoff.reset();
    if (this.wake) this.wake();
    else this.controller?.abort(new Dead("reconnecting"));
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const controller = new AbortController();
      this.controller = controller;
      this.handlers.onState({ phase: "connecting", attempt });
      let delay: number;
      let reason: string;
      this.arm(controller, this.readyTimeoutMs);
      try {
        const retryAfter = await this.consume(controller);
        if (retryAfter !== undefined) {
          reason = "the gateway asked the page to reconnect";
          delay = retryAfter + Math.round(this.random() * 250);
        } else {
          reason = "the server closed the stream";
          delay = this.backoff.next();
        }
      } catch (err) {
        if (this.stopped) break;
        if (isUnauthenticated(err)) {
          this.stopped = true;
          this.handlers.onAuthLost(describeError(err));
          this.handlers.onState({ phase: "stopped", reason: describeError(err) });
          break;
        }
        const cause = controller.signal.reason;
        reason = cause instanceof Dead ? cause.message : describeError(err);
        delay = this.backoff.next();
      } finally {
        this.clearWatchdog();
        controller.abort();
      }
      if (this.stopped) break;
      attempt += 1;
      this.handlers.onState({ phase: "waiting", attempt, retryAtMs: Date.now() + delay, reason });
      await this.sleep(delay);
    }
    this.running = false;
  }

  /** Reads one stream to its end. Returns the retry delay if the gateway asked to reconnect. */
  private async consume(controller: AbortController): Promise<number | undefined> {
    const stream = this.open(this.handlers.resumeFrom(), controller.signal);
    for await (const event of stream) {
      if (this.stopped) return undefined;
      this.arm(controller, this.heartbeatMs * this.missedBeats);
      const kind = event.kind;
      if (kind.case === "ready") {
        this.heartbeatMs = kind.value.heartbeatIntervalMs || 15_000;
        this.arm(controller, this.heartbeatMs * this.missedBeats);
        this.handlers.onEvent(event);
        this.handlers.onState({ phase: "syncing", gatewayId: kind.value.gatewayId });
        this.gatewayId = kind.value.gatewayId;
        continue;
      }
      if (kind.case === "synced") {
        this.backoff.reset();
        this.handlers.onEvent(event);
        this.handlers.onState({ phase: "live", gatewayId: this.gatewayId });
        continue;
      }
      if (kind.case === "reconnect") {
        this.handlers.onEvent(event);
        return kind.value.retryAfterMs;
      }
      this.handlers.onEvent(event);
    }
    return undefined;
  }

  /** (Re)starts the dead-stream timer: no event within `ms` aborts the attempt. */
  private arm(controller: AbortController, ms: number): void {
    this.clearWatchdog();
    this.watchdog = setTimeout(() => {
      controller.abort(new Dead(`no heartbeat for ${Math.round(ms / 1000)} s`));
    }, ms);
  }

  private clearWatchdog(): void {
    if (this.watchdog !== undefined) clearTimeout(this.watchdog);
    this.watchdog = undefined;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    }).finally(() => {
      this.wake = undefined;
    });
  }
}
