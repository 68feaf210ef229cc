// The page's controller: the session's lifecycle, the one live stream, what
// is on screen (marked read), and notices. Actions live beside it, one module
// per area (messages, groups, contacts, topics), sharing an AppContext. It
// calls the gateway (api/), feeds answers and stream events to the store
// (state/), and performs the side effects the store asks for (mark read,
// fetch the lists). Views read the store and call these; they never call the
// server themselves.

import { createClients, type Clients } from "../api/clients";
import { chatMessage, contactInfo, conversationInfo, gapNotice, groupInfo, topicInfo } from "../api/convert";
import { describeError, errorClause, isUnauthenticated } from "../api/errors";
import { withRetry } from "../api/retry";
import { clearSession, deviceId, loadCursors, loadSession, saveCursors, saveSession, type Session } from "../api/session";
import { LiveStream, type ConnectionState } from "../api/stream";
import { ConversationChanged_Change, type Conversation, type Event } from "../gen/switchboard/v1/switchboard_pb";
import type { ChatMessage } from "../state/model";
import { ChatStore } from "../state/store";
import { Contacts } from "./contacts";
import type { AppContext } from "./context";
import { Groups } from "./groups";
import { Messages } from "./messages";
import { showNotification } from "./notifications";
import { currentSubscription, disablePush, enablePush, pushKey, pushSupported } from "./push";
import { Topics } from "./topics";

export type { BindingAnswer } from "./topics";

export type Screen = { kind: "starting" } | { kind: "login"; notice?: string } | { kind: "chat" };

export interface Notice {
  id: number;
  text: string;
  tone: "error" | "info";
}

/** `localStorage["switchboard.debug"] = "1"` logs every stream event to the console. */
const debugEvents = (() => {
  try {
    return localStorage.getItem("switchboard.debug") === "1";
  } catch {
    return false;
  }
})();

const NOTICE_MS = 12_000;

/** Whether this browser's pushes carry message text (the reader's choice). */
const PUSH_PREVIEWS = "switchboard.pushPreviews";

export class Controller {
  screen: Screen = { kind: "starting" };
  session?: Session;
  store?: ChatStore;
  connection: ConnectionState = { phase: "connecting", attempt: 0 };
  notices: Notice[] = [];
  /** Read out by screen readers (a polite live region). */
  announcement = "";

  private readonly clients: Clients;
  private stream?: LiveStream;
  private listeners = new Set<() => void>();
  private unsubscribeStore?: () => void;
  private noticeId = 0;
  private connectedOnce = false;
  /** The lists were fetched at least once (not when the gateway was down at start). */
  private listsLoaded = false;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private saveTimer?: ReturnType<typeof setTimeout>;
  private readMarks = new Map<string, number>();
  private readTimer?: ReturnType<typeof setTimeout>;

  readonly messages: Messages;
  readonly groups: Groups;
  readonly contacts: Contacts;
  readonly topics: Topics;

  constructor(baseUrl: string) {
    this.clients = createClients(baseUrl, () => this.session?.token);
    const ctx: AppContext = {
      clients: this.clients,
      store: () => this.requireStore(),
      touch: () => this.touch(),
      notify: (text, tone) => this.notify(text, tone),
      act: (what, action) => this.act(what, action),
      refreshNow: () => this.refreshNow(),
      markOnScreenRead: () => {
        if (this.store) this.markReadable(this.store.setOnScreen(this.onScreen));
      },
    };
    this.messages = new Messages(ctx);
    this.groups = new Groups(ctx);
    this.contacts = new Contacts(ctx);
    this.topics = new Topics(ctx, this.messages);
  }

  // ------------------------------------------------------------ change feed

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  private touch(): void {
    this.store?.changed();
    this.changed();
  }

  // ------------------------------------------------------------ session

  /** On page load: resume the saved session, or show the login form. */
  async boot(): Promise<void> {
    const saved = loadSession();
    if (!saved) {
      this.screen = { kind: "login" };
      this.changed();
      return;
    }
    await this.begin(saved);
  }

  /** Changes the reader's display name; resolves to whether it was saved. */
  async rename(displayName: string): Promise<boolean> {
    const answer = await this.act("Could not change your name", () =>
      this.clients.accounts.updateProfile({ displayName }),
    );
    if (!answer?.user || !this.session) return false;
    this.session = { ...this.session, displayName: answer.user.displayName };
    saveSession(this.session);
    this.changed();
    return true;
  }

  /**
   * Web Push in this browser: the deployment's key and whether this browser
   * is subscribed (with previews or not); undefined where either side
   * cannot push.
   */
  async pushState(): Promise<{ key: string; on: boolean; previews: boolean } | undefined> {
    if (!pushSupported()) return undefined;
    const key = await this.act("Could not ask about push notifications", () => pushKey(this.clients));
    if (!key) return undefined;
    const on = (await currentSubscription().catch(() => null)) !== null;
    return { key, on, previews: localStorage.getItem(PUSH_PREVIEWS) === "1" };
  }

  /** Turns pushes on (with or without the text) or off; whether they are on now. */
  async setPush(key: string, on: boolean, previews: boolean): Promise<boolean> {
    if (!on) {
      await this.act("Could not turn push notifications off", () => disablePush(this.clients));
      return false;
    }
    const enabled = await this.act("Could not turn push notifications on", () =>
      enablePush(this.clients, key, previews),
    );
    if (enabled) localStorage.setItem(PUSH_PREVIEWS, previews ? "1" : "0");
    else if (enabled === false) this.notify("Push notifications need the browser's permission to notify.");
    return enabled === true;
  }

  /** Logs in; returns the error to show, if any. */
  async login(userId: string, password: string): Promise<string | undefined> {
    try {
      const answer = await this.clients.accounts.login({
        userId: userId.trim(),
        password,
        deviceId: deviceId(),
      });
      const session: Session = {
        token: answer.token,
        userId: answer.user?.userId ?? userId.trim(),
        displayName: answer.user?.displayName ?? "",
        deviceId: answer.deviceId,
        expiresAtMs: Number(answer.expiresAtMs),
      };
      saveSession(session);
      await this.begin(session);
      return undefined;
    } catch (err) {
      return describeError(err);
    }
  }

  /** Creates the account, then logs in. */
  async register(userId: string, password: string, displayName: string): Promise<string | undefined> {
    try {
      await this.clients.accounts.register({ userId: userId.trim(), password, displayName: displayName.trim() });
    } catch (err) {
      return describeError(err);
    }
    return this.login(userId, password);
  }

  async logout(): Promise<void> {
    try {
      // This browser stops taking the account's pushes.
      await disablePush(this.clients);
      await this.clients.accounts.logout({});
    } catch {
      // The token is forgotten here either way.
    }
    this.end({ kind: "login", notice: "You are logged out." });
  }

  private end(screen: Screen): void {
    this.stream?.stop();
    this.stream = undefined;
    this.unsubscribeStore?.();
    this.flushCursors();
    clearSession();
    this.session = undefined;
    this.store = undefined;
    this.notices = [];
    this.screen = screen;
    this.changed();
  }

  private async begin(session: Session): Promise<void> {
    this.session = session;
    const store = new ChatStore(session.userId);
    store.visible = typeof document === "undefined" || document.visibilityState !== "hidden";
    this.store = store;
    this.unsubscribeStore = store.subscribe(() => this.scheduleCursorSave());
    this.connectedOnce = false;
    this.listsLoaded = false;
    try {
      await this.loadEverything(true);
    } catch (err) {
      if (isUnauthenticated(err)) {
        this.end({ kind: "login", notice: "Your session has ended. Please log in again." });
        return;
      }
      // The gateway is unreachable: show the page anyway; the stream keeps trying
      // and the lists are fetched once it is back.
      this.notify(describeError(err));
    }
    this.screen = { kind: "chat" };
    this.startStream();
    this.changed();
  }

  /**
   * The conversation list with heads and unread counts, groups, topics and
   * contacts. First time: the list's heads become the stream's cursors (so
   * nothing between the list and the stream is lost); saved cursors of the
   * same epoch are kept when they are further.
   */
  private async loadEverything(first: boolean): Promise<void> {
    const store = this.requireStore();
    const [conversations, groups, topics, contacts, blocked] = await Promise.all([
      this.clients.chat.listConversations({}),
      this.clients.groups.listMyGroups({}),
      this.clients.topics.listTopics({}),
      this.clients.contacts.listContacts({}),
      this.clients.contacts.listBlocked({}),
    ]);
    if (store !== this.store) return;
    if (first) {
      store.cursors.epoch = conversations.epoch;
      store.cursors.restore(loadCursors(store.me), conversations.epoch);
    }
    store.setGroups(groups.groups.map(groupInfo), groups.invitations.map(groupInfo));
    store.applyConversationList(conversations.conversations.map(conversationInfo));
    store.setTopics(topics.topics.map(topicInfo));
    store.setContacts(
      contacts.contacts.map(contactInfo),
      contacts.requests.map(contactInfo),
      blocked.blocked.map((b) => b.userId),
    );
    this.markReadable(store.setOnScreen(this.onScreen));
    this.listsLoaded = true;
    this.touch();
  }

  private requireStore(): ChatStore {
    if (!this.store) throw new Error("not logged in");
    return this.store;
  }

  // ------------------------------------------------------------ the stream

  private startStream(): void {
    const store = this.requireStore();
    this.stream = new LiveStream(
      (args, signal) =>
        this.clients.chat.subscribe(
          {
            epoch: args.epoch,
            cursors: args.cursors.map((c) => ({ conversationId: c.conversationId, seq: BigInt(c.seq) })),
          },
          { signal, timeoutMs: 0 },
        ),
      {
        resumeFrom: () => store.cursors.toRequest(),
        onEvent: (event) => this.onEvent(store, event),
        onState: (state) => {
          this.connection = state;
          this.changed();
        },
        onAuthLost: () => this.end({ kind: "login", notice: "Your session has ended. Please log in again." }),
      },
    );
    this.stream.start();
  }

  /** The browser says the network is back: do not wait for the backoff. */
  networkBack(): void {
    this.stream?.reconnectNow();
  }

  private onEvent(store: ChatStore, event: Event): void {
    if (store !== this.store) return;
    const kind = event.kind;
    if (debugEvents && kind.case !== "heartbeat") {
      console.debug("event", kind.case, JSON.stringify(kind.value, (_k, v) => (typeof v === "bigint" ? Number(v) : v)));
    }
    switch (kind.case) {
      case "ready":
        if (!store.cursors.epoch) store.cursors.epoch = kind.value.epoch;
        return;
      case "message":
        this.onMessage(store, chatMessage(kind.value));
        break;
      case "receipt":
        store.applyReadReceipt(kind.value.conversationId, kind.value.userId, Number(kind.value.readSeq));
        break;
      case "delivered":
        store.applyDelivery(kind.value.conversationId, kind.value.userId, Number(kind.value.deliveredSeq));
        break;
      case "presence":
        store.setPresence(kind.value.userId, kind.value.online);
        break;
      case "typing": {
        const forMs = kind.value.expiresInMs;
        store.applyTyping(kind.value.conversationId, kind.value.userId, forMs);
        // Drawn again once it lapses.
        setTimeout(() => this.touch(), forMs + 50);
        break;
      }
      case "conversation":
        this.onConversationChanged(store, kind.value.change, kind.value.conversation);
        break;
      case "synced": {
        const behind = kind.value.heads.some((h) => Number(h.seq) > store.cursors.get(h.conversationId));
        // After a reconnect, what is not a message (read cursors moved on another
        // device, groups joined elsewhere) comes with the lists.
        if (!this.listsLoaded) this.scheduleRefresh(0, true);
        else if (this.connectedOnce || behind) this.scheduleRefresh(0);
        this.connectedOnce = true;
        break;
      }
      case "gap":
        this.onGap(store, gapNotice(kind.value));
        break;
      default:
        return;
    }
    this.touch();
  }

  private onMessage(store: ChatStore, message: ChatMessage): void {
    const outcome = store.applyMessage(message);
    const rereads = message.system?.kind === "message-edited" || message.system?.kind === "reactions-changed";
    if (rereads && message.system?.messageId) {
      void this.messages.reread(message.system.messageId);
    }
    if (outcome.readUpTo) this.markRead(message.conversationId, outcome.readUpTo);
    if (outcome.unknownConversation) this.scheduleRefresh();
    const topic = message.topic;
    if (topic && topic.ownerId === store.me && !store.topics.has(topic.topicId)) this.scheduleRefresh();
    const thread = store.thread(message.conversationId);
    if (message.system && thread?.info.groupId) {
      // Membership changed: member counts (and the open member list) are stale.
      if (outcome.isNew) this.scheduleRefresh();
      this.groups.membershipChanged(thread.info.groupId);
    }
    // A contact removed from (or leaving) a topic: the thread closes; the lists say so.
    if (message.system && message.topic) this.scheduleRefresh();
    const mentioned = !!message.mentions?.includes(store.me);
    const heard = (!thread?.info.muted && !thread?.info.request) || mentioned;
    if (outcome.isNew && !outcome.readUpTo && message.sender && message.sender !== store.me && heard) {
      const where = thread?.info.topic?.ownerId === store.me ? thread.info.topic.topicName : thread?.info.title;
      const what = mentioned ? `${message.sender} mentioned you` : `New message from ${message.sender}`;
      this.announce(`${what}${where ? ` in ${where}` : ""}: ${message.text}`);
      if (!store.visible) showNotification(`${what}${where ? ` in ${where}` : ""}`, message.text, message.conversationId);
    }
  }

  private onConversationChanged(
    store: ChatStore,
    change: ConversationChanged_Change,
    conversation: Conversation | undefined,
  ): void {
    const info = conversation ? conversationInfo(conversation) : undefined;
    if (change === ConversationChanged_Change.REMOVED && info) {
      store.removeConversation(info.id);
    } else if (info?.id && change !== ConversationChanged_Change.INVITED) {
      // Just added means open for writing (a topic binding announces the
      // thread as it was a moment before the bind).
      if (change === ConversationChanged_Change.ADDED) info.closed = false;
      store.upsertConversation(info);
    }
    if (change === ConversationChanged_Change.INVITED && info) {
      this.announce(`You are invited to ${info.title || "a group"}.`);
    }
    this.scheduleRefresh();
  }

  private onGap(store: ChatStore, gap: ReturnType<typeof gapNotice>): void {
    if (gap.reason === "epoch-changed") {
      // The server's data was reset: nothing held is valid. The stream goes on
      // in the new epoch; the lists give the new heads.
      store.reset();
      this.notify("The server's data was reset: older conversations are gone.", "info");
      this.scheduleRefresh(0, true);
      return;
    }
    store.invalidate(gap.conversationId);
    if (this.onScreen.includes(gap.conversationId)) void this.messages.latest(gap.conversationId);
    this.scheduleRefresh();
  }

  /** Fetch the lists again, soon (several triggers in a burst make one fetch). */
  private scheduleRefresh(delayMs = 150, adoptEpoch = false): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      this.loadEverything(adoptEpoch).catch((err) => {
        if (!isUnauthenticated(err)) console.warn("refreshing the lists failed", err);
      });
    }, delayMs);
  }

  private scheduleCursorSave(): void {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.flushCursors();
    }, 1000);
  }

  /** Keeps the stream's cursors for the next page load (also on pagehide). */
  flushCursors(): void {
    if (this.store) saveCursors(this.store.me, this.store.cursors.save());
  }

  // ------------------------------------------------------------ what is on screen

  private onScreen: string[] = [];

  /** The views say which conversations are visible; those are marked read. */
  setOnScreen(conversationIds: string[]): void {
    this.onScreen = conversationIds;
    const store = this.store;
    if (!store) return;
    const marks = store.setOnScreen(conversationIds);
    this.markReadable(marks);
    if (marks.length) this.touch();
  }

  setVisible(visible: boolean): void {
    const store = this.store;
    if (!store) return;
    const marks = store.setVisible(visible);
    this.markReadable(marks);
    if (marks.length) this.touch();
  }

  private markReadable(marks: { conversationId: string; seq: number }[]): void {
    for (const mark of marks) this.markRead(mark.conversationId, mark.seq);
  }

  /** Moves our read cursor (batched: one call per conversation per burst). */
  private markRead(conversationId: string, seq: number): void {
    if (seq <= 0) return;
    this.readMarks.set(conversationId, Math.max(seq, this.readMarks.get(conversationId) ?? 0));
    if (this.readTimer) return;
    this.readTimer = setTimeout(() => {
      this.readTimer = undefined;
      const marks = [...this.readMarks];
      this.readMarks.clear();
      for (const [id, upTo] of marks) {
        withRetry(() => this.clients.chat.markRead({ conversationId: id, seq: BigInt(upTo) }), { attempts: 3 })
          .then((answer) => {
            this.store?.markedRead(id, Number(answer.readSeq));
            this.touch();
          })
          .catch((err) => console.warn("marking read failed", id, err));
      }
    }, 120);
  }

  // ------------------------------------------------------------ notices

  /** Shows an error (or information) in words until dismissed or for a while. */
  notify(text: string, tone: Notice["tone"] = "error"): void {
    const id = ++this.noticeId;
    this.notices = [...this.notices.filter((n) => n.text !== text), { id, text, tone }].slice(-4);
    this.changed();
    setTimeout(() => this.dismiss(id), NOTICE_MS);
  }

  dismiss(id: number): void {
    const before = this.notices.length;
    this.notices = this.notices.filter((n) => n.id !== id);
    if (this.notices.length !== before) this.changed();
  }

  private announce(text: string): void {
    this.announcement = text;
  }

  /** Runs an action; a refusal becomes a notice ("<what>: <server's words>"). */
  private async act<T>(what: string, action: () => Promise<T>): Promise<T | undefined> {
    try {
      return await action();
    } catch (err) {
      if (isUnauthenticated(err)) {
        this.end({ kind: "login", notice: "Your session has ended. Please log in again." });
        return undefined;
      }
      this.notify(`${what}: ${errorClause(err)}`);
      return undefined;
    }
  }

  private async refreshNow(): Promise<void> {
    try {
      await this.loadEverything(false);
    } catch (err) {
      console.warn("refreshing the lists failed", err);
    }
  }
}
