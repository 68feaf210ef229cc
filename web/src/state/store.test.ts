import { describe, expect, it } from "vitest";

import type { ChatMessage, ConversationInfo } from "./model";
import { pageTitle, preview, sidebarEntries, unreadTotal } from "./sidebar";
import { ChatStore } from "./store";

let clock = 1_000;

function message(conversationId: string, seq: number, sender: string, text = `m${seq}`): ChatMessage {
  clock += 1000;
  return {
    conversationId,
    seq,
    messageId: `${conversationId}#${seq}`,
    sender,
    sentAtMs: clock,
    text,
    clientMsgId: `c-${conversationId}-${seq}`,
  };
}

function group(id: string, title: string, headSeq = 0, readSeq = 0): ConversationInfo {
  return {
    id,
    kind: "group",
    title,
    headSeq,
    readSeq,
    unread: headSeq - readSeq,
    peerId: "",
    groupId: id.slice(2),
    muted: false,
    closed: false,
  };
}

describe("ChatStore: unread and latest message", () => {
  it("counts a message to a group that is not open, without opening it", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One"), group("g:two", "Two")]);
    store.setOnScreen(["g:one"]);

    const outcome = store.applyMessage(message("g:two", 1, "ben", "hello two"));

    expect(outcome).toEqual({ isNew: true, unknownConversation: false });
    const two = store.thread("g:two")!.info;
    expect(two.unread).toBe(1);
    expect(two.lastMessage?.text).toBe("hello two");
    const entry = sidebarEntries(store).find((e) => e.key === "conversation:g:two")!;
    expect(entry.unread).toBe(1);
    expect(preview(entry.lastMessage, "ann")).toBe("ben: hello two");
  });

  it("previews an erased message as deleted, never its old text", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One")]);
    store.applyMessage({ ...message("g:one", 1, "ben", ""), deleted: true });
    const entry = sidebarEntries(store).find((e) => e.key === "conversation:g:one")!;
    expect(preview(entry.lastMessage, "ann")).toBe("ben: message deleted");
  });

  it("marks a message on screen read at once", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One", 4, 4)]);
    store.setOnScreen(["g:one"]);
    const outcome = store.applyMessage(message("g:one", 5, "ben"));
    expect(outcome.readUpTo).toBe(5);
    expect(store.thread("g:one")!.info.unread).toBe(0);
  });

  it("does not count a message while the tab is hidden as read", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One")]);
    store.setOnScreen(["g:one"]);
    store.setVisible(false);
    expect(store.applyMessage(message("g:one", 1, "ben")).readUpTo).toBeUndefined();
    expect(store.thread("g:one")!.info.unread).toBe(1);
    expect(store.setVisible(true)).toEqual([{ conversationId: "g:one", seq: 1 }]);
    expect(store.thread("g:one")!.info.unread).toBe(0);
  });

  it("never counts one's own message as unread, and it clears earlier ones", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One", 3, 1)]);
    store.applyMessage(message("g:one", 4, "ann"));
    expect(store.thread("g:one")!.info).toMatchObject({ unread: 0, readSeq: 4 });
  });

  it("drops duplicates by (conversation, seq): a replay after reconnect counts once", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One")]);
    const first = message("g:one", 1, "ben");
    expect(store.applyMessage(first).isNew).toBe(true);
    expect(store.applyMessage({ ...first }).isNew).toBe(false);
    expect(store.thread("g:one")!.info.unread).toBe(1);
  });

  it("does not count replayed messages the conversation list already counted", () => {
    const store = new ChatStore("ann");
    // The list says 3 messages, 1 read: 2 unread. The stream then replays 2 and 3.
    store.applyConversationList([group("g:one", "One", 3, 1)]);
    store.applyMessage(message("g:one", 2, "ben"));
    store.applyMessage(message("g:one", 3, "ben"));
    expect(store.thread("g:one")!.info.unread).toBe(2);
    store.applyMessage(message("g:one", 4, "ben"));
    expect(store.thread("g:one")!.info.unread).toBe(3);
  });

  it("lowers unread when another device of the user read the conversation", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One", 5, 0)]);
    store.applyReadReceipt("g:one", "ann", 3);
    expect(store.thread("g:one")!.info.unread).toBe(2);
    store.applyReadReceipt("g:one", "ann", 5);
    expect(store.thread("g:one")!.info.unread).toBe(0);
  });

  it("counts exactly from the messages it holds", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One", 0, 0)]);
    store.applyHistory("g:one", [], false, "latest");
    store.applyMessage(message("g:one", 1, "ben"));
    store.applyMessage(message("g:one", 2, "ann"));
    store.applyMessage(message("g:one", 3, "ben"));
    store.applyMessage(message("g:one", 4, "ben"));
    store.applyReadReceipt("g:one", "ann", 2);
    expect(store.thread("g:one")!.info.unread).toBe(2);
  });

  it("keeps others' read cursors as read receipts, forward only", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One", 5, 5)]);
    store.applyReadReceipt("g:one", "ben", 4);
    store.applyReadReceipt("g:one", "ben", 2);
    expect(store.thread("g:one")!.readBy.get("ben")).toBe(4);
  });

  it("keeps a conversation it did not know, provisionally, and asks for the list", () => {
    const store = new ChatStore("ann");
    const outcome = store.applyMessage(message("dm:ann:cy", 1, "cy", "hi ann"));
    expect(outcome.unknownConversation).toBe(true);
    const thread = store.thread("dm:ann:cy")!;
    expect(thread.provisional).toBe(true);
    expect(thread.info).toMatchObject({ kind: "direct", title: "cy", unread: 1 });
    store.upsertConversation({ ...group("dm:ann:cy", "Cy"), kind: "direct", headSeq: 1, unread: 1, peerId: "cy" });
    expect(store.thread("dm:ann:cy")!.provisional).toBe(false);
    expect(store.thread("dm:ann:cy")!.info.unread).toBe(1);
  });
});

describe("ChatStore: cursors", () => {
  it("starts from the list's heads and advances with each message", () => {
    const store = new ChatStore("ann");
    store.cursors.epoch = "e1";
    store.applyConversationList([group("g:one", "One", 7, 7), group("g:two", "Two", 0, 0)]);
    store.applyMessage(message("g:two", 1, "ben"));
    store.applyMessage(message("g:one", 8, "ben"));
    store.applyMessage(message("g:one", 8, "ben"));
    expect(store.cursors.toRequest()).toEqual({
      epoch: "e1",
      cursors: [
        { conversationId: "g:one", seq: 8 },
        { conversationId: "g:two", seq: 1 },
      ],
    });
  });

  it("restores saved cursors only for the same epoch", () => {
    const store = new ChatStore("ann");
    const saved = { epoch: "e1", cursors: { "g:one": 3, "g:bad": -1 } };
    expect(store.cursors.restore(saved, "e2")).toBe(false);
    expect(store.cursors.get("g:one")).toBe(0);
    expect(store.cursors.restore(saved, "e1")).toBe(true);
    expect(store.cursors.get("g:one")).toBe(3);
    expect(store.cursors.get("g:bad")).toBe(0);
  });

  it("forgets everything on reset (the server's data was reset)", () => {
    const store = new ChatStore("ann");
    store.cursors.epoch = "e1";
    store.applyConversationList([group("g:one", "One", 7, 7)]);
    store.reset();
    expect(store.cursors.toRequest()).toEqual({ epoch: "", cursors: [] });
    expect(store.conversations.size).toBe(0);
  });
});

describe("ChatStore: history", () => {
  it("merges the first page with what the stream delivered meanwhile, each seq once", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One", 10, 10)]);
    store.applyMessage(message("g:one", 11, "ben"));
    const page = [9, 10, 11].map((seq) => message("g:one", seq, "ben"));
    store.applyHistory("g:one", page, true, "latest");
    store.applyMessage(message("g:one", 12, "ben"));
    store.applyMessage(message("g:one", 11, "ben"));
    const thread = store.thread("g:one")!;
    expect(thread.messages.map((m) => m.seq)).toEqual([9, 10, 11, 12]);
    expect(thread.hasMoreBefore).toBe(true);

    store.applyHistory("g:one", [7, 8, 9].map((seq) => message("g:one", seq, "ben")), false, "older");
    expect(thread.messages.map((m) => m.seq)).toEqual([7, 8, 9, 10, 11, 12]);
    expect(thread.hasMoreBefore).toBe(false);
  });

  it("treats history newer than the stream's last message like a live message", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One", 1, 1)]);
    store.applyHistory("g:one", [message("g:one", 1, "ben"), message("g:one", 2, "ben", "late")], false, "latest");
    expect(store.thread("g:one")!.info).toMatchObject({ headSeq: 2, unread: 1 });
    expect(store.thread("g:one")!.info.lastMessage?.text).toBe("late");
    expect(store.cursors.get("g:one")).toBe(2);
  });
});

describe("ChatStore: pending sends", () => {
  it("drops a pending message once the stream echoes it", () => {
    const store = new ChatStore("ann");
    store.addPending({ clientMsgId: "c1", place: "g:one", text: "hi" });
    store.failPending("c1", "the server is unreachable");
    expect(store.pendingIn("g:one")).toEqual([
      { clientMsgId: "c1", place: "g:one", text: "hi", state: "failed", error: "the server is unreachable" },
    ]);
    store.retryPending("c1");
    expect(store.pendingIn("g:one")[0]!.state).toBe("sending");
    store.applyMessage({ ...message("g:one", 1, "ann", "hi"), clientMsgId: "c1" });
    expect(store.pendingIn("g:one")).toEqual([]);
  });
});

describe("ChatStore: opening a conversation while messages arrive", () => {
  it("keeps a message that arrived before a history page read earlier", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One", 2, 2)]);
    // The page asks for history (it answers with 1..2), and seq 3 arrives on
    // the stream before that answer does.
    store.applyMessage(message("g:one", 3, "ben", "are you there?"));
    store.applyHistory("g:one", [message("g:one", 1, "ben"), message("g:one", 2, "ben")], false, "latest");
    expect(store.thread("g:one")!.messages.map((m) => m.seq)).toEqual([1, 2, 3]);
  });

  it("drops buffered messages older than the first page", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One", 0, 0)]);
    for (let seq = 1; seq <= 5; seq++) store.applyMessage(message("g:one", seq, "ben"));
    store.applyHistory("g:one", [4, 5].map((seq) => message("g:one", seq, "ben")), true, "latest");
    expect(store.thread("g:one")!.messages.map((m) => m.seq)).toEqual([4, 5]);
    expect(store.thread("g:one")!.hasMoreBefore).toBe(true);
  });
});

describe("ChatStore: deleted for everyone", () => {
  it("turns the named message into a tombstone when the notice arrives", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One")]);
    store.setOnScreen(["g:one"]);
    store.applyMessage(message("g:one", 1, "ben", "oops"));
    store.applyMessage(message("g:one", 2, "ben", "fine"));
    store.applyMessage({
      ...message("g:one", 3, "", "ben deleted a message"),
      system: { kind: "message-deleted", userId: "ben", actorId: "ben", messageId: "g:one#1" },
    });
    const messages = store.thread("g:one")!.messages;
    expect(messages.map((m) => [m.seq, m.text, !!m.deleted])).toEqual([
      [1, "", true],
      [2, "fine", false],
      [3, "ben deleted a message", false],
    ]);
  });
});

describe("ChatStore: edited", () => {
  it("puts the version read again in place of the one held", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One")]);
    store.applyMessage(message("g:one", 1, "ben", "at 5"));
    store.replaceMessage({ ...message("g:one", 1, "ben", "at 6"), editedAtMs: 9_000 });
    const [only] = store.thread("g:one")!.messages;
    expect([only!.text, only!.editedAtMs]).toEqual(["at 6", 9_000]);
    expect(store.thread("g:one")!.info.lastMessage?.text).toBe("at 6");
  });
});

describe("quotes", () => {
  it("quote a message as the server would: one line, cut, nothing of a tombstone", async () => {
    const { quoteOf, seqOf } = await import("./messages");
    const long = message("g:one", 4, "ben", `a  b\n${"x".repeat(200)}`);
    const quote = quoteOf(long);
    expect(quote.messageId).toBe("g:one#4");
    expect([...quote.excerpt].length).toBe(120);
    expect(quote.excerpt.startsWith("a b x")).toBe(true);
    expect(quote.excerpt.endsWith("…")).toBe(true);
    expect(quoteOf({ ...long, text: "", deleted: true })).toMatchObject({ excerpt: "", deleted: true });
    expect(seqOf("t:tabc:ann#12")).toBe(12);
    expect(seqOf("nonsense")).toBe(0);
  });
});

describe("ChatStore: typing", () => {
  it("shows who types until it lapses or their message comes, never oneself", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One")]);
    store.applyTyping("g:one", "ben", 6000, 1_000);
    store.applyTyping("g:one", "cyd", 6000, 1_000);
    store.applyTyping("g:one", "ann", 6000, 1_000);
    expect(store.typingIn("g:one", 2_000)).toEqual(["ben", "cyd"]);
    expect(store.typingIn("g:one", 7_001)).toEqual([]);
    store.applyMessage(message("g:one", 1, "ben", "done typing"));
    expect(store.typingIn("g:one", 2_000)).toEqual(["cyd"]);
    expect(store.typingIn("g:two", 2_000)).toEqual([]);
  });
});

describe("ChatStore: reactions", () => {
  it("shows the counts the server answered, and a deletion drops them", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One")]);
    store.applyMessage(message("g:one", 1, "ben", "picnic?"));
    store.setReactions("g:one#1", [{ emoji: "👍", count: 2, mine: true }]);
    expect(store.thread("g:one")!.messages[0]!.reactions).toEqual([{ emoji: "👍", count: 2, mine: true }]);
    store.setReactions("g:one#1", []);
    expect(store.thread("g:one")!.messages[0]!.reactions).toBeUndefined();
    store.setReactions("g:one#1", [{ emoji: "🎉", count: 1, mine: false }]);
    store.applyMessage({
      ...message("g:one", 2, "", "ben deleted a message"),
      system: { kind: "message-deleted", userId: "ben", actorId: "ben", messageId: "g:one#1" },
    });
    const [deleted] = store.thread("g:one")!.messages;
    expect([deleted!.deleted, deleted!.reactions]).toEqual([true, undefined]);
  });
});

describe("the tab's title", () => {
  it("counts what is unread everywhere, muted conversations not", () => {
    const store = new ChatStore("ann");
    store.applyConversationList([group("g:one", "One", 3, 1), { ...group("g:two", "Two", 5, 0), muted: true }, group("g:three", "Three", 2, 2)]);
    expect(unreadTotal(store)).toBe(2);
    expect(pageTitle(unreadTotal(store))).toBe("(2) Switchboard");
    store.applyMessage(message("g:three", 3, "ben"));
    expect(pageTitle(unreadTotal(store))).toBe("(3) Switchboard");
    expect(pageTitle(0)).toBe("Switchboard");
  });
});
