// A conversation's messages: ascending by seq, each seq once.

import type { ChatMessage, Quote } from "./model";

/**
 * Inserts `message` in seq order; a seq already held is a duplicate (a
 * replay, a history page overlapping the stream) and is dropped.
 * Returns true if it was inserted.
 */
export function sortedInsert(messages: ChatMessage[], message: ChatMessage): boolean {
  // Almost always the message is the newest: check the end first.
  const last = messages[messages.length - 1];
  if (!last || last.seq < message.seq) {
    messages.push(message);
    return true;
  }
  let low = 0;
  let high = messages.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (messages[mid]!.seq < message.seq) low = mid + 1;
    else high = mid;
  }
  if (messages[low]?.seq === message.seq) return false;
  messages.splice(low, 0, message);
  return true;
}

/** Consecutive messages of one sender within a few minutes render as one block. */
/** What a message says on screen: a tombstone says it was deleted. */
export function shownText(message: ChatMessage): string {
  return message.deleted ? "message deleted" : message.text;
}

const EXCERPT_CHARS = 120;

/** How a reply quotes `message` (as the server would: one line, cut with "…"). */
export function quoteOf(message: ChatMessage): Quote {
  const line = message.text.split(/\s+/).filter(Boolean).join(" ");
  const chars = [...line];
  const excerpt = chars.length <= EXCERPT_CHARS ? line : `${chars.slice(0, EXCERPT_CHARS - 1).join("")}…`;
  return { messageId: message.messageId, sender: message.sender, excerpt: message.deleted ? "" : excerpt, deleted: !!message.deleted };
}

/** The seq in a message id (`<conversation>#<seq>`); 0 if there is none. */
export function seqOf(messageId: string): number {
  const seq = Number(messageId.slice(messageId.lastIndexOf("#") + 1));
  return Number.isInteger(seq) && seq > 0 ? seq : 0;
}

export function startsBlock(previous: ChatMessage | undefined, message: ChatMessage): boolean {
  if (!previous) return true;
  if (previous.system || message.system) return true;
  if (previous.sender !== message.sender) return true;
  return message.sentAtMs - previous.sentAtMs > 5 * 60_000;
}
