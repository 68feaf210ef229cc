import { describe, expect, it } from "vitest";

import type { ChatMessage, ConversationInfo, TopicInfo, TopicRef } from "./model";
import { sidebarEntries } from "./sidebar";
import { ChatStore } from "./store";
import { broadcastsInView, copyStatus, statusLabel, topicSummary } from "./topics";

const tag = (contact: string, broadcastId = ""): TopicRef => ({
  topicId: "tp1",
  topicName: "Badminton",
  ownerId: "olga",
  contactId: contact,
  broadcastId,
  forwardedFrom: "",
});

function thread(contact: string, headSeq = 0): ConversationInfo {
  return {
    id: `t:tp1:${contact}`,
    kind: "topic-thread",
    title: contact,
    headSeq,
    readSeq: headSeq,
    unread: 0,
    peerId: contact,
    groupId: "",
    topic: tag(contact),
    muted: false,
    closed: false,
  };
}

function msg(contact: string, seq: number, sender: string, sentAtMs: number, broadcastId = ""): ChatMessage {
  return {
    conversationId: `t:tp1:${contact}`,
    seq,
    messageId: `t:tp1:${contact}#${seq}`,
    sender,
    sentAtMs,
    text: `text ${seq}`,
    clientMsgId: `c${seq}`,
    topic: tag(contact, broadcastId),
  };
}

const topic: TopicInfo = {
  id: "tp1",
  name: "Badminton",
  ownerId: "olga",
  createdAtMs: 1,
  deleted: false,
  contacts: ["ann", "ben"].map((userId) => ({
    userId,
    displayName: userId,
    state: "bound",
    conversationId: `t:tp1:${userId}`,
  })),
};

describe("topic copy status", () => {
  it("moves from sent to delivered, read and replied as receipts and replies arrive", () => {
    const store = new ChatStore("olga");
    store.applyConversationList([thread("ann")]);
    const copy = msg("ann", 1, "olga", 10, "b1");
    store.applyMessage(copy);
    const ann = store.thread("t:tp1:ann")!;
    expect(statusLabel(copyStatus(ann, copy, "ann"))).toBe("sent");
    store.applyDelivery("t:tp1:ann", "ann", 1);
    expect(copyStatus(ann, copy, "ann")).toEqual({ delivered: true, read: false, replied: false });
    store.applyReadReceipt("t:tp1:ann", "ann", 1);
    expect(statusLabel(copyStatus(ann, copy, "ann"))).toBe("read");
    store.applyMessage(msg("ann", 2, "ann", 20));
    expect(copyStatus(ann, copy, "ann")).toEqual({ delivered: true, read: true, replied: true });
  });

  it("counts read as delivered even before the delivery receipt", () => {
    const store = new ChatStore("olga");
    store.applyConversationList([thread("ann")]);
    const copy = msg("ann", 1, "olga", 10, "b1");
    store.applyMessage(copy);
    store.applyReadReceipt("t:tp1:ann", "ann", 3);
    expect(copyStatus(store.thread("t:tp1:ann")!, copy, "ann").delivered).toBe(true);
  });

  it("a reply in one thread says nothing about another", () => {
    const store = new ChatStore("olga");
    store.applyConversationList([thread("ann"), thread("ben")]);
    const toAnn = msg("ann", 1, "olga", 10, "b1");
    const toBen = msg("ben", 1, "olga", 10, "b1");
    store.applyMessage(toAnn);
    store.applyMessage(toBen);
    store.applyMessage(msg("ann", 2, "ann", 20));
    expect(copyStatus(store.thread("t:tp1:ann")!, toAnn, "ann").replied).toBe(true);
    expect(copyStatus(store.thread("t:tp1:ben")!, toBen, "ben").replied).toBe(false);
  });
});

describe("the owner's topic in the sidebar", () => {
  it("is one entry with its threads' unread added up and the newest message", () => {
    const store = new ChatStore("olga");
    store.setTopics([topic]);
    store.applyConversationList([thread("ann"), thread("ben")]);
    store.applyMessage(msg("ann", 1, "olga", 10, "b1"));
    store.applyMessage(msg("ben", 1, "olga", 10, "b1"));
    store.applyMessage(msg("ann", 2, "ann", 20));
    store.applyMessage(msg("ben", 2, "ben", 30));

    const summary = topicSummary(store, topic);
    expect(summary.unread).toBe(2);
    expect(summary.lastMessage?.sender).toBe("ben");
    const entries = sidebarEntries(store).filter((e) => e.section === "topics");
    expect(entries.map((e) => e.key)).toEqual(["topic:tp1"]);
    expect(entries[0]!.unread).toBe(2);
  });

  it("is a dialog per topic on the contact's side, labelled with the owner", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([{ ...thread("ann"), title: "Badminton (from olga)", peerId: "olga" }]);
    const [entry] = sidebarEntries(store);
    expect(entry).toMatchObject({
      section: "topics",
      title: "Badminton (from olga)",
      label: "topic from olga",
      place: { kind: "conversation", id: "t:tp1:ann" },
    });
  });

  it("lists each broadcast once, newest first", () => {
    const store = new ChatStore("olga");
    store.applyConversationList([thread("ann"), thread("ben")]);
    for (const t of ["t:tp1:ann", "t:tp1:ben"]) store.applyHistory(t, [], false, "latest");
    store.applyMessage(msg("ann", 1, "olga", 10, "b1"));
    store.applyMessage(msg("ben", 1, "olga", 10, "b1"));
    store.applyMessage(msg("ben", 2, "olga", 40, "b2"));
    const threads = ["t:tp1:ann", "t:tp1:ben"].map((t) => store.thread(t)!);
    expect(broadcastsInView(threads)).toEqual(["b2", "b1"]);
  });
});
