// What the action modules (messages, groups, contacts, topics) share with
// the controller: the clients, the logged-in store, and how to report.

import type { Clients } from "../api/clients";
import type { ChatStore } from "../state/store";

export interface AppContext {
  readonly clients: Clients;
  /** The logged-in user's store (throws when logged out). */
  store(): ChatStore;
  /** The store changed: views re-render. */
  touch(): void;
  /** Shows a message to the user, in words. */
  notify(text: string, tone?: "error" | "info"): void;
  /** Runs an action; a refusal becomes a notice ("<what>: <server's words>"). */
  act<T>(what: string, action: () => Promise<T>): Promise<T | undefined>;
  /** Fetches the lists (conversations, groups, topics, contacts) now. */
  refreshNow(): Promise<void>;
  /** Marks read whatever is on screen (after new messages were loaded). */
  markOnScreenRead(): void;
}
