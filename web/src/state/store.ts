// Everything the page knows, and the rules that keep it right: one entry per
// conversation with its unread count and latest message, the messages of the
// conversations that were opened, read and delivery cursors, the stream's
// cursors. Plain data and pure methods, no I/O: the controller (`app/`) feeds
// it server answers and stream events and performs the side effects it asks
// for (mark read, refresh the list).

import { CursorBook } from "./cursors";
import { sortedInsert } from "./messages";
import type {
  ChatMessage,
  ContactInfo,
  ConversationInfo,
  ConversationKind,
  GroupInfo,
  MemberInfo,
  Reaction,
  TopicInfo,
} from "./model";

/** One conversation as the page holds it. */
export interface Thread {
  info: ConversationInfo;
  /**
   * Ascending by seq. Once `loaded`, without holes: the newest messages of the
   * conversation. Before, only what the stream delivered (merged with the
   * first history page when the conversation is opened).
   */
  messages: ChatMessage[];
  /** `messages` holds the latest page and everything since (the conversation was opened). */
  loaded: boolean;
  /** Older messages exist on the server (page them with History). */
  hasMoreBefore: boolean;
  /** Read cursors of the other participants (read receipts). */
  readBy: Map<string, number>;
  /** Topic threads, for the owner: how far the contact's devices have received. */
  deliveredTo: Map<string, number>;
  /** Seq of each participant's latest message (a topic copy is "replied" below it). */
  lastSentBy: Map<string, number>;
  /** Known only from a message so far: its title and kind come with the next list. */
  provisional: boolean;
}

/** A message typed here and not yet acknowledged. */
export interface PendingSend {
  clientMsgId: string;
  /** The conversation it shows in, or `topic:<id>` for a topic broadcast. */
  place: string;
  text: string;
  state: "sending" | "failed";
  error?: string;
}

export interface MessageOutcome {
  /** Above everything held before: counts for unread and the preview. */
  isNew: boolean;
  /** The conversation is on screen: mark it read up to here. */
  readUpTo?: number;
  /** The page did not know this conversation: fetch the list. */
  unknownConversation: boolean;
}

/** Live messages kept for a conversation not opened yet (the newest). */
const UNOPENED_BUFFER = 500;

export function emptyThread(info: ConversationInfo): Thread {
  return {
    info,
    messages: [],
    loaded: false,
    hasMoreBefore: false,
    readBy: new Map(),
    deliveredTo: new Map(),
    lastSentBy: new Map(),
    provisional: false,
  };
}

export class ChatStore {
  readonly cursors = new CursorBook();
  readonly conversations = new Map<string, Thread>();
  /** Topics the user owns (the one-to-many windows). */
  topics = new Map<string, TopicInfo>();
  groups = new Map<string, GroupInfo>();
  invitations = new Map<string, GroupInfo>();
  contacts: ContactInfo[] = [];
  /** Users who added this user and were not added back. */
  contactRequests: ContactInfo[] = [];
  /** The users the reader blocked. */
  blocked = new Set<string>();
  readonly presence = new Map<string, boolean>();
  /** Who is typing where: conversation → user → until (ms since the epoch). */
  private readonly typing = new Map<string, Map<string, number>>();
  /** Member lists of the groups whose members were asked for. */
  readonly members = new Map<string, MemberInfo[]>();
  readonly pending = new Map<string, PendingSend>();
  /** Conversations on screen now (a topic window shows several threads). */
  private active = new Set<string>();
  /** The tab is visible: messages on screen count as read. */
  visible = true;

  private listeners = new Set<() => void>();
  private version = 0;

  constructor(readonly me: string) {}

  // ------------------------------------------------------------ change feed

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Bumped on every change (views re-render on it). */
  get revision(): number {
    return this.version;
  }

  changed(): void {
    this.version++;
    for (const listener of this.listeners) listener();
  }

  // ------------------------------------------------------------ conversations

  thread(conversationId: string): Thread | undefined {
    return this.conversations.get(conversationId);
  }

  /** The full list from ListConversations: the server's counts win unless we are ahead. */
  applyConversationList(list: ConversationInfo[]): void {
    for (const info of list) this.upsertConversation(info);
  }

  /** Adds or refreshes one conversation's summary, keeping its messages. */
  upsertConversation(info: ConversationInfo): void {
    const known = this.conversations.get(info.id);
    if (!known) {
      this.conversations.set(info.id, emptyThread({ ...info }));
      this.cursors.advance(info.id, info.headSeq);
      return;
    }
    const local = known.info;
    const serverAhead = info.headSeq >= local.headSeq;
    known.info = {
      ...info,
      headSeq: Math.max(info.headSeq, local.headSeq),
      lastMessage: serverAhead ? (info.lastMessage ?? local.lastMessage) : local.lastMessage,
      readSeq: Math.max(info.readSeq, local.readSeq),
      unread: 0,
    };
    known.info.unread = serverAhead
      ? Math.max(0, Math.min(info.unread, known.info.headSeq - known.info.readSeq))
      : this.countUnread(known);
    known.provisional = false;
    this.cursors.advance(info.id, info.headSeq);
  }

  /** The thread for `info.id`, created empty if the page has not seen it yet. */
  ensureThread(info: ConversationInfo): Thread {
    let thread = this.conversations.get(info.id);
    if (!thread) {
      thread = emptyThread({ ...info });
      this.conversations.set(info.id, thread);
    }
    return thread;
  }

  removeConversation(conversationId: string): void {
    this.conversations.delete(conversationId);
    this.cursors.forget(conversationId);
    this.active.delete(conversationId);
  }

  /**
   * One message from the stream (or a send's echo). Duplicates (same
   * conversation and seq) change nothing.
   */
  applyMessage(message: ChatMessage): MessageOutcome {
    // Their message is what they were typing.
    if (message.sender) this.typing.get(message.conversationId)?.delete(message.sender);
    let thread = this.conversations.get(message.conversationId);
    const unknownConversation = !thread;
    if (!thread) {
      thread = emptyThread(this.provisionalInfo(message));
      thread.provisional = true;
      this.conversations.set(message.conversationId, thread);
    }
    this.cursors.advance(message.conversationId, message.seq);
    if (message.sender) {
      const last = thread.lastSentBy.get(message.sender) ?? 0;
      if (message.seq > last) thread.lastSentBy.set(message.sender, message.seq);
    }
    // Kept even before the conversation is opened: a history page on its way
    // may have been read before this message was stored.
    sortedInsert(thread.messages, message);
    if (!thread.loaded && thread.messages.length > UNOPENED_BUFFER) thread.messages.shift();
    if (message.system?.kind === "message-deleted" && message.system.messageId) {
      this.markDeleted(thread, message.system.messageId);
    }
    if (message.sender === this.me && message.clientMsgId) {
      this.pending.delete(message.clientMsgId);
    }

    const info = thread.info;
    if (message.seq <= info.headSeq) return { isNew: false, unknownConversation };

    info.headSeq = message.seq;
    info.lastMessage = message;
    if (message.sender === this.me) {
      // The server moves a sender's read cursor to their own message.
      info.readSeq = message.seq;
      info.unread = 0;
      return { isNew: true, unknownConversation };
    }
    if (this.isOnScreen(message.conversationId)) {
      info.readSeq = message.seq;
      info.unread = 0;
      return { isNew: true, readUpTo: message.seq, unknownConversation };
    }
    info.unread += 1;
    return { isNew: true, unknownConversation };
  }

  /**
   * A page of history. `latest` replaces what was held (the first open);
   * `older` goes in front (scroll-back).
   */
  applyHistory(
    conversationId: string,
    page: ChatMessage[],
    hasMore: boolean,
    direction: "latest" | "older",
  ): void {
    const thread = this.conversations.get(conversationId);
    if (!thread) return;
    if (direction === "latest") {
      // Keep whatever the stream delivered while the page was on its way.
      const lowest = page.length ? page[0]!.seq : 0;
      const kept = thread.messages.filter((m) => m.seq > lowest);
      thread.messages = [...page];
      for (const message of kept) sortedInsert(thread.messages, message);
      thread.loaded = true;
      thread.hasMoreBefore = hasMore;
    } else {
      for (const message of page) sortedInsert(thread.messages, message);
      thread.hasMoreBefore = hasMore;
    }
    for (const message of page) {
      if (message.sender) {
        const last = thread.lastSentBy.get(message.sender) ?? 0;
        if (message.seq > last) thread.lastSentBy.set(message.sender, message.seq);
      }
      // Stored after the stream's last delivery: counts like a live message.
      if (message.seq > thread.info.headSeq) this.applyMessage(message);
    }
  }

  /** `userId` is typing in a conversation, for the next `forMs`; one's own notices are ignored. */
  applyTyping(conversationId: string, userId: string, forMs: number, nowMs = Date.now()): void {
    if (userId === this.me) return;
    let typists = this.typing.get(conversationId);
    if (!typists) {
      typists = new Map();
      this.typing.set(conversationId, typists);
    }
    typists.set(userId, nowMs + forMs);
  }

  /** Who is typing in a conversation now, by user id. */
  typingIn(conversationId: string, nowMs = Date.now()): string[] {
    const typists = this.typing.get(conversationId);
    if (!typists) return [];
    return [...typists].filter(([, until]) => until > nowMs).map(([user]) => user).sort();
  }

  /**
   * A message as the server holds it now (read again after an edit): it
   * replaces the copy held, wherever one is.
   */
  replaceMessage(message: ChatMessage): void {
    const thread = this.conversations.get(message.conversationId);
    if (!thread) return;
    const at = thread.messages.findIndex((m) => m.seq === message.seq);
    if (at >= 0) thread.messages[at] = message;
    if (thread.info.lastMessage?.messageId === message.messageId) thread.info.lastMessage = message;
  }

  /** Changes what the page holds of one conversation's summary (the reader's own change, as the server took it). */
  patchConversation(conversationId: string, patch: Partial<ConversationInfo>): void {
    const thread = this.conversations.get(conversationId);
    if (thread) thread.info = { ...thread.info, ...patch };
  }

  /** The reactions a message has now (the reader's own change, as the server answered it). */
  setReactions(messageId: string, reactions: Reaction[]): void {
    const thread = this.conversations.get(messageId.slice(0, messageId.lastIndexOf("#")));
    const at = thread?.messages.findIndex((m) => m.messageId === messageId) ?? -1;
    if (thread && at >= 0) thread.messages[at] = { ...thread.messages[at]!, reactions: reactions.length ? reactions : undefined };
  }

  /** A message deleted for everyone: its text goes, a tombstone stays. */
  private markDeleted(thread: Thread, messageId: string): void {
    const at = thread.messages.findIndex((m) => m.messageId === messageId);
    if (at >= 0) thread.messages[at] = { ...thread.messages[at]!, text: "", deleted: true, reactions: undefined };
    const last = thread.info.lastMessage;
    if (last?.messageId === messageId) thread.info.lastMessage = { ...last, text: "", deleted: true };
  }

  /** History loaded before a gap is no longer contiguous: reload on next open. */
  invalidate(conversationId: string): void {
    const thread = this.conversations.get(conversationId);
    if (!thread) return;
    thread.messages = [];
    thread.loaded = false;
    thread.hasMoreBefore = false;
  }

  applyReadReceipt(conversationId: string, userId: string, readSeq: number): void {
    const thread = this.conversations.get(conversationId);
    if (!thread) return;
    if (userId === this.me) {
      // Read on another device (or here): fewer unread.
      if (readSeq <= thread.info.readSeq) return;
      thread.info.readSeq = readSeq;
      thread.info.unread = this.countUnread(thread);
      return;
    }
    const known = thread.readBy.get(userId) ?? 0;
    if (readSeq > known) thread.readBy.set(userId, readSeq);
  }

  applyDelivery(conversationId: string, userId: string, deliveredSeq: number): void {
    const thread = this.conversations.get(conversationId);
    if (!thread) return;
    const known = thread.deliveredTo.get(userId) ?? 0;
    if (deliveredSeq > known) thread.deliveredTo.set(userId, deliveredSeq);
  }

  /** Our own read cursor moved (MarkRead answered). */
  markedRead(conversationId: string, readSeq: number): void {
    this.applyReadReceipt(conversationId, this.me, readSeq);
  }

  /**
   * Which conversations are on screen. Returns those with unread messages,
   * with the seq to mark them read up to.
   */
  setOnScreen(conversationIds: string[]): { conversationId: string; seq: number }[] {
    this.active = new Set(conversationIds);
    return this.readableNow();
  }

  setVisible(visible: boolean): { conversationId: string; seq: number }[] {
    this.visible = visible;
    return visible ? this.readableNow() : [];
  }

  isOnScreen(conversationId: string): boolean {
    return this.visible && this.active.has(conversationId);
  }

  private readableNow(): { conversationId: string; seq: number }[] {
    if (!this.visible) return [];
    const marks: { conversationId: string; seq: number }[] = [];
    for (const id of this.active) {
      const thread = this.conversations.get(id);
      if (!thread) continue;
      if (thread.info.headSeq > thread.info.readSeq || thread.info.unread > 0) {
        thread.info.readSeq = Math.max(thread.info.readSeq, thread.info.headSeq);
        thread.info.unread = 0;
        marks.push({ conversationId: id, seq: thread.info.headSeq });
      }
    }
    return marks;
  }

  /** Unread after the read cursor moved: exact when the messages are here. */
  private countUnread(thread: Thread): number {
    const { headSeq, readSeq } = thread.info;
    if (readSeq >= headSeq) return 0;
    const oldest = thread.messages[0]?.seq;
    if (thread.loaded && oldest !== undefined && oldest <= readSeq + 1) {
      return thread.messages.filter((m) => m.seq > readSeq && m.sender !== this.me).length;
    }
    return Math.min(thread.info.unread, headSeq - readSeq);
  }

  private provisionalInfo(message: ChatMessage): ConversationInfo {
    let kind: ConversationKind = "direct";
    let title = message.sender && message.sender !== this.me ? message.sender : "New conversation";
    let groupId = "";
    if (message.topic) {
      kind = "topic-thread";
      title = message.topic.topicName;
    } else {
      for (const group of this.groups.values()) {
        if (group.conversationId === message.conversationId) {
          kind = "group";
          title = group.name;
          groupId = group.id;
        }
      }
    }
    return {
      id: message.conversationId,
      kind,
      title,
      headSeq: 0,
      readSeq: 0,
      unread: 0,
      peerId: kind === "direct" && message.sender !== this.me ? message.sender : "",
      groupId,
      topic: message.topic ? { ...message.topic, broadcastId: "", forwardedFrom: "" } : undefined,
      muted: false,
      closed: false,
    };
  }

  // ------------------------------------------------------------ pending sends

  /**
   * A send was acknowledged: it shows in place of the pending copy at once.
   * Only the stream's echo moves the cursor and the preview, so that an
   * earlier message still on its way is neither skipped on a reconnect nor
   * miscounted.
   */
  applyAck(message: ChatMessage): void {
    this.pending.delete(message.clientMsgId);
    const thread = this.conversations.get(message.conversationId);
    if (thread?.loaded) sortedInsert(thread.messages, message);
  }

  addPending(send: Omit<PendingSend, "state">): void {
    this.pending.set(send.clientMsgId, { ...send, state: "sending" });
  }

  failPending(clientMsgId: string, error: string): void {
    const send = this.pending.get(clientMsgId);
    if (send) {
      send.state = "failed";
      send.error = error;
    }
  }

  retryPending(clientMsgId: string): void {
    const send = this.pending.get(clientMsgId);
    if (send) {
      send.state = "sending";
      delete send.error;
    }
  }

  resolvePending(clientMsgId: string): void {
    this.pending.delete(clientMsgId);
  }

  pendingIn(place: string): PendingSend[] {
    return [...this.pending.values()].filter((p) => p.place === place);
  }

  // ------------------------------------------------------------ everything else

  setPresence(userId: string, online: boolean): void {
    this.presence.set(userId, online);
    for (const list of this.members.values()) {
      for (const member of list) if (member.userId === userId) member.online = online;
    }
    for (const contact of this.contacts) if (contact.userId === userId) contact.online = online;
  }

  setTopics(topics: TopicInfo[]): void {
    this.topics = new Map(topics.map((t) => [t.id, t]));
  }

  upsertTopic(topic: TopicInfo): void {
    this.topics.set(topic.id, topic);
  }

  setGroups(groups: GroupInfo[], invitations: GroupInfo[]): void {
    this.groups = new Map(groups.map((g) => [g.id, g]));
    this.invitations = new Map(invitations.map((g) => [g.id, g]));
  }

  setContacts(contacts: ContactInfo[], requests: ContactInfo[], blocked: string[] = []): void {
    this.contacts = contacts;
    this.contactRequests = requests;
    this.blocked = new Set(blocked);
    for (const contact of contacts) {
      if (contact.mutual) this.presence.set(contact.userId, contact.online);
    }
  }

  /** The server's data was reset (Gap EPOCH_CHANGED): nothing held is valid. */
  reset(): void {
    this.conversations.clear();
    this.cursors.clear();
    this.topics.clear();
    this.groups.clear();
    this.invitations.clear();
    this.members.clear();
    this.pending.clear();
    this.active.clear();
  }
}
