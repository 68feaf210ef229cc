// History and sending. A send shows as pending at once, retries with the
// same client message id while the server is unreachable (stored once),
// and on failure stays on screen with Retry and Discard.

import { chatMessage, reaction } from "../api/convert";
import { describeError, errorClause } from "../api/errors";
import { withRetry } from "../api/retry";
import { newClientMsgId } from "../api/session";
import { seqOf } from "../state/messages";
import type { Quote, SearchHit } from "../state/model";
import type { AppContext } from "./context";

const HISTORY_PAGE = 40;
/** How often a typing notice is sent while typing (the server lets one through every 2 s). */
const TYPING_EVERY_MS = 3000;

export class Messages {
  private resends = new Map<string, () => Promise<void>>();
  /** When each conversation was last told the reader is typing. */
  private typingSaid = new Map<string, number>();

  constructor(private readonly ctx: AppContext) {}

  /** The newest page of a conversation, and who has read how far. */
  async latest(conversationId: string): Promise<void> {
    const { clients } = this.ctx;
    const store = this.ctx.store();
    try {
      const [page, cursors] = await Promise.all([
        withRetry(() => clients.chat.history({ conversationId, beforeSeq: 0n, limit: HISTORY_PAGE })),
        clients.chat.listReadCursors({ conversationId }).catch(() => undefined),
      ]);
      store.applyHistory(conversationId, page.messages.map(chatMessage), page.hasMore, "latest");
      for (const cursor of cursors?.cursors ?? []) {
        store.applyReadReceipt(conversationId, cursor.userId, Number(cursor.readSeq));
      }
      this.ctx.markOnScreenRead();
      this.ctx.touch();
    } catch (err) {
      this.ctx.notify(`Could not load the conversation: ${errorClause(err)}`);
    }
  }

  /** One page of a search of the reader's history (`pageToken` from the page before). */
  async search(query: string, pageToken = ""): Promise<{ hits: SearchHit[]; next: string } | undefined> {
    try {
      const page = await withRetry(() => this.ctx.clients.chat.search({ query, pageToken, limit: 20 }));
      const hits = page.hits.flatMap((hit) =>
        hit.message ? [{ message: chatMessage(hit.message), pieces: hit.pieces.map((p) => ({ text: p.text, matched: p.matched })) }] : [],
      );
      return { hits, next: page.nextPageToken };
    } catch (err) {
      this.ctx.notify(`Could not search: ${errorClause(err)}`);
      return undefined;
    }
  }

  /** Scroll-back: the page before the oldest message held. */
  async older(conversationId: string): Promise<void> {
    const store = this.ctx.store();
    const thread = store.thread(conversationId);
    const oldest = thread?.messages[0]?.seq;
    if (!thread || !oldest || !thread.hasMoreBefore) return;
    try {
      const page = await withRetry(() =>
        this.ctx.clients.chat.history({ conversationId, beforeSeq: BigInt(oldest), limit: HISTORY_PAGE }),
      );
      store.applyHistory(conversationId, page.messages.map(chatMessage), page.hasMore, "older");
      this.ctx.touch();
    } catch (err) {
      this.ctx.notify(`Could not load older messages: ${errorClause(err)}`);
    }
  }

  /** Sends to a conversation; the message shows as pending until stored. */
  send(conversationId: string, text: string, replyTo?: Quote): void {
    const store = this.ctx.store();
    const clientMsgId = newClientMsgId();
    // The message ends the typing; typing again says so again.
    this.typingSaid.delete(conversationId);
    store.addPending({ clientMsgId, place: conversationId, text });
    this.deliver(clientMsgId, async () => {
      const answer = await withRetry(() =>
        this.ctx.clients.chat.send({
          to: { case: "conversationId", value: conversationId },
          clientMsgId,
          text,
          replyTo: replyTo?.messageId ?? "",
        }),
      );
      store.applyAck({
        conversationId: answer.conversationId,
        seq: Number(answer.seq),
        messageId: answer.messageId,
        sender: store.me,
        sentAtMs: Number(answer.sentAtMs),
        text,
        clientMsgId,
        topic: store.thread(conversationId)?.info.topic,
        replyTo,
      });
    });
  }

  /** Starts (or continues) a one-to-one chat; resolves to its conversation id. */
  async sendToUser(userId: string, text: string): Promise<string | undefined> {
    const store = this.ctx.store();
    try {
      const answer = await withRetry(() =>
        this.ctx.clients.chat.send({ to: { case: "userId", value: userId.trim() }, clientMsgId: newClientMsgId(), text }),
      );
      if (!store.thread(answer.conversationId)) await this.ctx.refreshNow();
      return answer.conversationId;
    } catch (err) {
      this.ctx.notify(describeError(err));
      return undefined;
    }
  }

  /** Runs a send (`attempt`) and keeps it for Retry if it fails. */
  deliver(clientMsgId: string, attempt: () => Promise<void>): void {
    this.resends.set(clientMsgId, attempt);
    this.ctx.touch();
    attempt()
      .then(() => this.resends.delete(clientMsgId))
      .catch((err) => {
        this.ctx.store().failPending(clientMsgId, errorClause(err));
        this.ctx.notify(`Not sent: ${errorClause(err)}`);
      })
      .finally(() => this.ctx.touch());
  }

  /** Tries a failed send again, with the same client message id (stored once). */
  retry(clientMsgId: string): void {
    const attempt = this.resends.get(clientMsgId);
    if (!attempt) return;
    this.ctx.store().retryPending(clientMsgId);
    this.deliver(clientMsgId, attempt);
  }

  /** Says the reader is typing in a conversation: at most every 3 s, best effort. */
  typing(conversationId: string): void {
    const now = Date.now();
    if ((this.typingSaid.get(conversationId) ?? 0) > now - TYPING_EVERY_MS) return;
    this.typingSaid.set(conversationId, now);
    this.ctx.clients.chat.typing({ conversationId }).catch(() => undefined);
  }

  /** Reads one message again (it was edited) and puts the new version in place. */
  async reread(messageId: string): Promise<void> {
    const seq = seqOf(messageId);
    if (!seq) return;
    const conversationId = messageId.slice(0, messageId.lastIndexOf("#"));
    try {
      const page = await withRetry(() =>
        this.ctx.clients.chat.history({ conversationId, afterSeq: BigInt(seq - 1), limit: 1 }),
      );
      const message = page.messages.map(chatMessage).find((m) => m.seq === seq);
      if (message) {
        this.ctx.store().replaceMessage(message);
        this.ctx.touch();
      }
    } catch {
      // Shown as it was until the conversation is loaded again.
    }
  }

  /** Replaces the text of one of the reader's messages; false (and a notice) if refused. */
  async edit(messageId: string, text: string): Promise<boolean> {
    try {
      await withRetry(() => this.ctx.clients.chat.editMessage({ messageId, text }));
      return true;
    } catch (err) {
      this.ctx.notify(`Not edited: ${errorClause(err)}`);
      return false;
    }
  }

  /** Adds (`on`) or takes back the reader's `emoji` on a message; shown at once from the answer. */
  async react(messageId: string, emoji: string, on: boolean): Promise<void> {
    try {
      const answer = await withRetry(() => this.ctx.clients.chat.react({ messageId, emoji, on }));
      this.ctx.store().setReactions(messageId, answer.reactions.map(reaction));
      this.ctx.touch();
    } catch (err) {
      this.ctx.notify(`No reaction: ${errorClause(err)}`);
    }
  }

  /** Who reacted to a message, and with what (oldest first); empty (and a notice) if refused. */
  async reactors(messageId: string): Promise<{ userId: string; emoji: string }[]> {
    try {
      const answer = await withRetry(() => this.ctx.clients.chat.listReactions({ messageId }));
      return answer.reactors.map((r) => ({ userId: r.userId, emoji: r.emoji }));
    } catch (err) {
      this.ctx.notify(`Cannot list reactions: ${errorClause(err)}`);
      return [];
    }
  }

  /** Accepts a message request: the chat joins the inbox on all the reader's devices. */
  async accept(conversationId: string): Promise<void> {
    try {
      await withRetry(() => this.ctx.clients.chat.acceptConversation({ conversationId }));
      this.ctx.store().patchConversation(conversationId, { request: undefined });
      this.ctx.touch();
    } catch (err) {
      this.ctx.notify(`Not accepted: ${errorClause(err)}`);
    }
  }

  /** Mutes (or unmutes) a chat or group on all the reader's devices: no badge, no notifications but mentions. */
  async mute(conversationId: string, muted: boolean): Promise<void> {
    try {
      await withRetry(() => this.ctx.clients.chat.muteConversation({ conversationId, muted }));
      this.ctx.store().patchConversation(conversationId, { muted });
      this.ctx.touch();
    } catch (err) {
      this.ctx.notify(`${muted ? "Not muted" : "Not unmuted"}: ${errorClause(err)}`);
    }
  }

  /** Deletes a message for everyone; the stream's notice marks it deleted here too. */
  async remove(messageId: string): Promise<void> {
    try {
      await withRetry(() => this.ctx.clients.chat.deleteMessage({ messageId }));
    } catch (err) {
      this.ctx.notify(`Not deleted: ${errorClause(err)}`);
    }
  }

  discard(clientMsgId: string): void {
    this.resends.delete(clientMsgId);
    this.ctx.store().resolvePending(clientMsgId);
    this.ctx.touch();
  }
}
