// What survives a page reload, in localStorage: the login (token), this
// browser's device id, and each user's stream cursors.

import type { SavedCursors } from "../state/cursors";

export interface Session {
  token: string;
  userId: string;
  displayName: string;
  deviceId: string;
  expiresAtMs: number;
}

const SESSION_KEY = "switchboard.session";
const DEVICE_KEY = "switchboard.device";
const cursorsKey = (userId: string) => `switchboard.cursors.${userId}`;

function read<T>(key: string): T | undefined {
  try {
    const raw = localStorage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : undefined;
  } catch {
    return undefined;
  }
}

function write(key: string, value: unknown): void {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Private mode or full storage: the page still works, it just forgets on reload.
  }
}

/** A random id of `bytes` bytes, hex (crypto.randomUUID needs a secure context; this does not). */
export function randomHex(bytes: number): string {
  const data = new Uint8Array(bytes);
  crypto.getRandomValues(data);
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** An idempotency key for a send: a v4-style UUID. */
export function newClientMsgId(): string {
  const hex = randomHex(16);
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** This browser's device id ("web-…"), made once and kept. */
export function deviceId(): string {
  const known = read<string>(DEVICE_KEY);
  if (known && /^web-[0-9a-f]{8,}$/.test(known)) return known;
  const made = `web-${randomHex(6)}`;
  write(DEVICE_KEY, made);
  return made;
}

export function loadSession(): Session | undefined {
  const session = read<Session>(SESSION_KEY);
  if (!session?.token || !session.userId) return undefined;
  if (session.expiresAtMs && session.expiresAtMs < Date.now()) return undefined;
  return session;
}

export function saveSession(session: Session): void {
  write(SESSION_KEY, session);
}

export function clearSession(): void {
  try {
    localStorage.removeItem(SESSION_KEY);
  } catch {
    // nothing to clear
  }
}

export function loadCursors(userId: string): SavedCursors | undefined {
  return read<SavedCursors>(cursorsKey(userId));
}

export function saveCursors(userId: string, cursors: SavedCursors): void {
  write(cursorsKey(userId), cursors);
}
