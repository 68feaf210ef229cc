// The owner's side of a topic: one thread per contact, the fate of each copy
// (delivered / read / replied), and the roll-up the sidebar shows.

import type { ChatMessage, CopyStatus, TopicContactInfo, TopicInfo } from "./model";
import type { ChatStore, Thread } from "./store";

/**
 * The fate of one topic message in one contact's thread. Read implies
 * delivered (a contact cannot read what never reached them); replied means
 * the contact wrote in the thread after it.
 */
export function copyStatus(thread: Thread, copy: ChatMessage, contactId: string): CopyStatus {
  const read = (thread.readBy.get(contactId) ?? 0) >= copy.seq;
  const delivered = read || (thread.deliveredTo.get(contactId) ?? 0) >= copy.seq;
  const replied = (thread.lastSentBy.get(contactId) ?? 0) > copy.seq;
  return { delivered, read, replied };
}

/** Words for a status, most advanced first. */
export function statusLabel(status: CopyStatus): string {
  if (status.replied) return "replied";
  if (status.read) return "read";
  if (status.delivered) return "delivered";
  return "sent";
}

/** The contacts a send reaches: bound or muted (left and removed are not). */
export function reachable(contact: TopicContactInfo): boolean {
  return contact.state === "bound" || contact.state === "muted";
}

export interface TopicSummary {
  topic: TopicInfo;
  unread: number;
  lastMessage?: ChatMessage;
}

/** The owner's topic as one sidebar entry: its threads' unread added up, the newest message. */
export function topicSummary(store: ChatStore, topic: TopicInfo): TopicSummary {
  let unread = 0;
  let lastMessage: ChatMessage | undefined;
  for (const thread of store.conversations.values()) {
    if (thread.info.topic?.topicId !== topic.id) continue;
    unread += thread.info.unread;
    const last = thread.info.lastMessage;
    if (last && (!lastMessage || last.sentAtMs > lastMessage.sentAtMs)) lastMessage = last;
  }
  return { topic, unread, lastMessage };
}

/** Thread of `contactId` in the owner's topic (created empty if no message exists yet). */
export function threadIdOf(topic: TopicInfo, contactId: string): string | undefined {
  return topic.contacts.find((c) => c.userId === contactId)?.conversationId;
}

/**
 * Copies of one broadcast live in several threads; a status query needs
 * each broadcast once. Newest first.
 */
export function broadcastsInView(threads: Thread[]): string[] {
  const seen = new Map<string, number>();
  for (const thread of threads) {
    for (const message of thread.messages) {
      const id = message.topic?.broadcastId;
      if (!id) continue;
      seen.set(id, Math.max(seen.get(id) ?? 0, message.sentAtMs));
    }
  }
  return [...seen].sort((a, b) => b[1] - a[1]).map(([broadcastId]) => broadcastId);
}
