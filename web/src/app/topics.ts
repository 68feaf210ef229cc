// One-to-many topics. The owner: create, bind and unbind contacts, send to
// all or some, copy and resend, rename, delete, and the window's threads with
// each copy's delivery. A contact: leave or mute.

import { topicInfo } from "../api/convert";
import { withRetry } from "../api/retry";
import { newClientMsgId } from "../api/session";
import { BindingResult_Outcome, TopicRecipient_Outcome, type BindingResult } from "../gen/switchboard/v1/topics_pb";
import type { ConversationInfo, TopicInfo } from "../state/model";
import { broadcastsInView, reachable } from "../state/topics";
import type { AppContext } from "./context";
import type { Messages } from "./messages";

/** One contact's answer to adding or removing contacts of a topic. */
export interface BindingAnswer {
  userId: string;
  ok: boolean;
  message: string;
}

export class Topics {
  constructor(
    private readonly ctx: AppContext,
    private readonly messages: Messages,
  ) {}

  async create(name: string, contacts: string[]): Promise<{ topicId?: string; answers: BindingAnswer[] }> {
    const result = await this.ctx.act("Could not create the topic", async () => {
      const answer = await this.ctx.clients.topics.createTopic({ name: name.trim(), contacts });
      if (answer.topic) this.ctx.store().upsertTopic(topicInfo(answer.topic));
      this.ctx.touch();
      return { topicId: answer.topic?.topicId, answers: answer.results.map(bindingAnswer) };
    });
    return result ?? { answers: [] };
  }

  /** Binds more contacts; "already in this topic" is an answer, not an error. */
  async addContacts(topicId: string, contacts: string[]): Promise<BindingAnswer[]> {
    const result = await this.ctx.act("Could not add to the topic", async () => {
      const answer = await this.ctx.clients.topics.addTopicContacts({ topicId, contacts });
      if (answer.topic) this.ctx.store().upsertTopic(topicInfo(answer.topic));
      this.ctx.touch();
      void this.load(topicId);
      return answer.results.map(bindingAnswer);
    });
    return result ?? [];
  }

  async removeContact(topicId: string, contact: string): Promise<BindingAnswer[]> {
    const result = await this.ctx.act("Could not remove from the topic", async () => {
      const answer = await this.ctx.clients.topics.removeTopicContacts({ topicId, contacts: [contact] });
      if (answer.topic) this.ctx.store().upsertTopic(topicInfo(answer.topic));
      this.ctx.touch();
      return answer.results.map(bindingAnswer);
    });
    return result ?? [];
  }

  async rename(topicId: string, name: string): Promise<void> {
    await this.ctx.act("Could not rename the topic", async () => {
      const answer = await this.ctx.clients.topics.renameTopic({ topicId, name: name.trim() });
      if (answer.topic) this.ctx.store().upsertTopic(topicInfo(answer.topic));
      this.ctx.touch();
    });
  }

  async delete(topicId: string): Promise<void> {
    await this.ctx.act("Could not delete the topic", async () => {
      await this.ctx.clients.topics.deleteTopic({ topicId });
      await this.ctx.refreshNow();
    });
  }

  /** Contact side: stop receiving the topic. */
  async leave(topicId: string): Promise<void> {
    await this.ctx.act("Could not leave the topic", async () => {
      await this.ctx.clients.topics.leaveTopic({ topicId });
      await this.ctx.refreshNow();
    });
  }

  /** Contact side: keep receiving, without counting it as unread. */
  async mute(topicId: string, muted: boolean): Promise<void> {
    await this.ctx.act(muted ? "Could not mute the topic" : "Could not unmute the topic", async () => {
      await this.ctx.clients.topics.muteTopic({ topicId, muted });
      await this.ctx.refreshNow();
    });
  }

  /**
   * One message, a private copy to each chosen contact (every bound one when
   * `only` is empty); `forwardOf` is the message it was copied from.
   */
  send(topicId: string, text: string, only: string[], forwardOf?: string): void {
    const store = this.ctx.store();
    const clientMsgId = newClientMsgId();
    const topic = store.topics.get(topicId);
    store.addPending({ clientMsgId, place: `topic:${topicId}`, text });
    this.messages.deliver(clientMsgId, async () => {
      const answer = await withRetry(() =>
        this.ctx.clients.topics.sendToTopic({ topicId, clientMsgId, text, only, forwardMessageId: forwardOf ?? "" }),
      );
      store.resolvePending(clientMsgId);
      for (const skipped of answer.recipients.filter((r) => r.outcome !== TopicRecipient_Outcome.SENT)) {
        this.ctx.notify(skipped.message || `${skipped.userId} was skipped`, "info");
      }
      for (const recipient of answer.recipients.filter((r) => r.outcome === TopicRecipient_Outcome.SENT)) {
        store.applyAck({
          conversationId: recipient.conversationId,
          seq: Number(recipient.seq),
          messageId: `${recipient.conversationId}#${recipient.seq}`,
          sender: store.me,
          sentAtMs: Number(answer.sentAtMs),
          text,
          clientMsgId,
          topic: {
            topicId,
            topicName: topic?.name ?? "",
            ownerId: store.me,
            contactId: recipient.userId,
            broadcastId: answer.broadcastId,
            forwardedFrom: forwardOf ?? "",
          },
        });
      }
    });
  }

  /**
   * The owner's window: every contact's thread (latest page), read cursors,
   * and delivery of the recent broadcasts.
   */
  async load(topicId: string): Promise<void> {
    const store = this.ctx.store();
    const topic = store.topics.get(topicId);
    if (!topic) return;
    for (const contact of topic.contacts) store.ensureThread(threadInfo(topic, contact.userId, contact.conversationId));
    const unloaded = topic.contacts.map((c) => c.conversationId).filter((id) => !store.thread(id)?.loaded);
    await Promise.all(unloaded.map((id) => this.messages.latest(id)));
    await this.loadDelivery(topic);
  }

  /** Seeds "delivered" from BroadcastStatus, newest broadcast first, until every contact is covered. */
  private async loadDelivery(topic: TopicInfo): Promise<void> {
    const store = this.ctx.store();
    const threads = topic.contacts.map((c) => store.thread(c.conversationId)).filter((t) => t !== undefined);
    const uncovered = new Set(topic.contacts.filter(reachable).map((c) => c.userId));
    for (const broadcastId of broadcastsInView(threads).slice(0, 10)) {
      if (!uncovered.size) break;
      try {
        const answer = await this.ctx.clients.topics.broadcastStatus({ topicId: topic.id, broadcastId });
        for (const status of answer.contacts) {
          if (status.delivered || status.read) {
            store.applyDelivery(status.conversationId, status.userId, Number(status.seq));
            uncovered.delete(status.userId);
          }
        }
      } catch (err) {
        console.warn("broadcast status failed", err);
        break;
      }
    }
    this.ctx.touch();
  }
}

function bindingAnswer(result: BindingResult): BindingAnswer {
  const ok = result.outcome === BindingResult_Outcome.ADDED || result.outcome === BindingResult_Outcome.REMOVED;
  const fallback = ok ? `${result.userId}: done` : `${result.userId}: not changed`;
  return { userId: result.userId, ok, message: result.message || fallback };
}

/** A thread of the owner's topic that has no message yet. */
function threadInfo(topic: TopicInfo, contactId: string, conversationId: string): ConversationInfo {
  return {
    id: conversationId,
    kind: "topic-thread",
    title: contactId,
    headSeq: 0,
    readSeq: 0,
    unread: 0,
    peerId: contactId,
    groupId: "",
    topic: {
      topicId: topic.id,
      topicName: topic.name,
      ownerId: topic.ownerId,
      contactId,
      broadcastId: "",
      forwardedFrom: "",
    },
    muted: false,
    closed: false,
  };
}
