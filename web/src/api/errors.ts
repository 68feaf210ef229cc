// Server errors in words. The gateway sends a gRPC status with a human
// message ("wrong user id or password", "you are not a member of group …");
// that message is what the user sees, never a code or a stack.

import { Code, ConnectError } from "@connectrpc/connect";

/** The network or the server failed, not the request: trying again may work. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof ConnectError)) return err instanceof TypeError;
  if (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded) return true;
  // fetch() rejecting (connection refused or cut) surfaces as Unknown around a TypeError.
  return err.code === Code.Unknown && err.cause instanceof TypeError;
}

export function isUnauthenticated(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.Unauthenticated;
}

export function isCanceled(err: unknown): boolean {
  return (
    (err instanceof ConnectError && err.code === Code.Canceled) ||
    (err instanceof Error && err.name === "AbortError")
  );
}

/** One sentence for the user: "Wrong user id or password." */
export function describeError(err: unknown): string {
  const text = errorClause(err);
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The same, to follow a colon: "Could not join the group: you are not invited …". */
export function errorClause(err: unknown): string {
  if (isTransient(err)) {
    const detail = err instanceof ConnectError && err.code === Code.Unavailable ? err.rawMessage.trim() : "";
    return detail && !/fetch|network/i.test(detail)
      ? `the server is unavailable right now (${sentence(detail, false)})`
      : "cannot reach the server. Check the connection; retrying may help.";
  }
  if (err instanceof ConnectError) {
    const text = err.rawMessage.trim();
    if (text) return sentence(text);
    return `the server refused this (${Code[err.code] ?? "error"}).`;
  }
  if (err instanceof Error && err.message) return sentence(err.message);
  return "something went wrong.";
}

function sentence(text: string, stop = true): string {
  const trimmed = text.replace(/[.!?]+$/, "");
  return stop ? `${trimmed}.` : trimmed;
}
