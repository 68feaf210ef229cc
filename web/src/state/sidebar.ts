// What the sidebar lists: groups, one-to-one chats and topics, each with its
// unread count and latest message, newest activity first.

import { shownText } from "./messages";
import type { ChatMessage } from "./model";
import type { ChatStore } from "./store";
import { topicSummary } from "./topics";

/** Where an entry leads: one conversation, or the owner's window of a topic. */
export type Place = { kind: "conversation"; id: string; seq?: number } | { kind: "topic"; id: string };

export interface SidebarEntry {
  key: string;
  place: Place;
  section: "requests" | "groups" | "chats" | "topics";
  title: string;
  /** Says what it is, e.g. "topic from ann" (read out with the title). */
  label: string;
  unread: number;
  lastMessage?: ChatMessage;
  muted: boolean;
  closed: boolean;
  /** For sorting entries without messages. */
  activityMs: number;
}

export function placeKey(place: Place): string {
  return `${place.kind}:${place.id}`;
}

/** Unread messages the reader is to hear of: every entry's, muted ones not counted. */
export function unreadTotal(store: ChatStore): number {
  return sidebarEntries(store).reduce((sum, entry) => sum + entry.unread, 0);
}

/** The tab's title: the unread total first, so it shows in a row of tabs. */
export function pageTitle(unread: number): string {
  return unread > 0 ? `(${unread}) Switchboard` : "Switchboard";
}

export function sidebarEntries(store: ChatStore): SidebarEntry[] {
  const entries: SidebarEntry[] = [];
  for (const thread of store.conversations.values()) {
    const info = thread.info;
    if (info.kind === "topic-thread") {
      // The owner sees a topic as one window, not one entry per contact.
      if (info.topic?.ownerId === store.me || !info.topic) continue;
      entries.push({
        key: `conversation:${info.id}`,
        place: { kind: "conversation", id: info.id },
        section: "topics",
        title: info.title || info.topic.topicName,
        label: `topic from ${info.topic.ownerId}`,
        unread: info.muted ? 0 : info.unread,
        lastMessage: info.lastMessage,
        muted: info.muted,
        closed: info.closed,
        activityMs: info.lastMessage?.sentAtMs ?? 0,
      });
      continue;
    }
    entries.push({
      key: `conversation:${info.id}`,
      place: { kind: "conversation", id: info.id },
      // A message request waits apart, and counts nowhere until accepted.
      section: info.request ? "requests" : info.kind === "group" ? "groups" : "chats",
      title: info.title || info.peerId || info.id,
      label: info.request ? "message request" : info.kind === "group" ? "group" : "chat",
      unread: info.muted || info.request ? 0 : info.unread,
      lastMessage: info.lastMessage,
      muted: info.muted,
      closed: info.closed,
      activityMs: info.lastMessage?.sentAtMs ?? 0,
    });
  }
  for (const topic of store.topics.values()) {
    const summary = topicSummary(store, topic);
    const bound = topic.contacts.filter((c) => c.state === "bound" || c.state === "muted").length;
    entries.push({
      key: `topic:${topic.id}`,
      place: { kind: "topic", id: topic.id },
      section: "topics",
      title: topic.name,
      label: `your topic, ${bound} ${bound === 1 ? "contact" : "contacts"}`,
      unread: summary.unread,
      lastMessage: summary.lastMessage,
      muted: false,
      closed: topic.deleted,
      activityMs: summary.lastMessage?.sentAtMs ?? topic.createdAtMs,
    });
  }
  return entries.sort((a, b) => b.activityMs - a.activityMs || a.title.localeCompare(b.title));
}

/** A one-line preview of a message: "ann: see you at 7". */
export function preview(message: ChatMessage | undefined, me: string): string {
  if (!message) return "No messages yet";
  const text = shownText(message).replace(/\s+/g, " ").trim();
  if (message.system || !message.sender) return text;
  const who = message.sender === me ? "You" : message.sender;
  return `${who}: ${text}`;
}
