import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";

import { Backoff } from "./backoff";
import { describeError, errorClause } from "./errors";
import { withRetry } from "./retry";

const noSleep = () => Promise.resolve();

describe("withRetry", () => {
  it("repeats an idempotent call while the server is unavailable", async () => {
    let calls = 0;
    const result = await withRetry(
      async () => {
        calls++;
        if (calls < 3) throw new ConnectError("router unreachable", Code.Unavailable);
        return "stored";
      },
      { sleep: noSleep },
    );
    expect(result).toBe("stored");
    expect(calls).toBe(3);
  });

  it("does not repeat a refusal", async () => {
    let calls = 0;
    const refused = withRetry(
      async () => {
        calls++;
        throw new ConnectError("you are not a member of group gx", Code.PermissionDenied);
      },
      { sleep: noSleep },
    );
    await expect(refused).rejects.toThrow("not a member");
    expect(calls).toBe(1);
  });

  it("gives up after its attempts", async () => {
    let calls = 0;
    const failing = withRetry(
      async () => {
        calls++;
        throw new TypeError("Failed to fetch");
      },
      { attempts: 4, sleep: noSleep, backoff: new Backoff({ baseMs: 1, maxMs: 1 }) },
    );
    await expect(failing).rejects.toThrow("Failed to fetch");
    expect(calls).toBe(4);
  });
});

describe("describeError", () => {
  it("shows the server's own words as a sentence", () => {
    expect(describeError(new ConnectError("wrong user id or password", Code.Unauthenticated))).toBe(
      "Wrong user id or password.",
    );
  });

  it("says the server cannot be reached instead of a fetch error", () => {
    expect(describeError(new ConnectError("Failed to fetch", Code.Unknown, undefined, undefined, new TypeError()))).toBe(
      "Cannot reach the server. Check the connection; retrying may help.",
    );
  });

  it("reads on after a colon without a capital", () => {
    const refused = new ConnectError("you are not invited to group gx", Code.PermissionDenied);
    expect(`Could not join the group: ${errorClause(refused)}`).toBe(
      "Could not join the group: you are not invited to group gx.",
    );
  });
});
