// One conversation: a group, a one-to-one chat, or (for a contact) a topic
// dialog. Opening it loads the newest page and marks it read.

import { useEffect, useRef, useState } from "preact/hooks";

import type { Controller } from "../app/controller";
import { quoteOf } from "../state/messages";
import type { ChatMessage } from "../state/model";
import type { Thread } from "../state/store";
import { Composer } from "./Composer";
import { listNames } from "./format";
import { MembersPanel } from "./MembersPanel";
import { MessageList } from "./MessageList";

interface Props {
  controller: Controller;
  conversationId: string;
  /** A message to bring into view once loaded (a search hit). */
  focusSeq?: number;
  onBack: () => void;
}

export function ConversationView({ controller, conversationId, focusSeq, onBack }: Props) {
  const store = controller.store!;
  const thread = store.thread(conversationId);
  const [draft, setDraft] = useState("");
  const [showMembers, setShowMembers] = useState(false);
  const [replying, setReplying] = useState<ChatMessage | undefined>(undefined);
  const heading = useRef<HTMLHeadingElement>(null);
  const info = thread?.info;

  useEffect(() => {
    controller.setOnScreen([conversationId]);
    if (thread && !thread.loaded) void controller.messages.latest(conversationId);
    if (!window.matchMedia("(min-width: 721px)").matches) heading.current?.focus();
    return () => controller.setOnScreen([]);
  }, [conversationId, !!thread]);

  if (!thread || !info) {
    return (
      <div class="conversation">
        <p class="loading">Loading…</p>
      </div>
    );
  }

  const isGroup = info.kind === "group";
  const typists = store.typingIn(conversationId);
  const isTopic = info.kind === "topic-thread";
  const blocked = info.kind === "direct" && store.blocked.has(info.peerId);
  const peerOnline = info.kind === "direct" ? store.presence.get(info.peerId) : undefined;
  let subtitle: string;
  if (isGroup) {
    const group = store.groups.get(info.groupId);
    subtitle = `Group${group ? ` · ${group.memberCount} ${group.memberCount === 1 ? "member" : "members"}` : ""}`;
  } else if (isTopic && info.topic) {
    subtitle = `Topic from ${info.topic.ownerId}: a private dialog, apart from your chat with ${info.topic.ownerId}`;
  } else {
    subtitle = peerOnline === undefined ? "Chat" : peerOnline ? "Online" : "Offline";
  }

  return (
    <div class={`conversation${showMembers ? " with-panel" : ""}`} data-conversation={conversationId}>
      <header class="conversation-header">
        <button type="button" class="back" onClick={onBack} aria-label="Back to conversations">
          ‹
        </button>
        <div class="titles">
          <h1 ref={heading} tabIndex={-1} class="conversation-title">
            {isTopic && <span class="tag topic">Topic</span>}
            {info.title || info.peerId}
          </h1>
          <p class="conversation-subtitle">{subtitle}</p>
        </div>
        <div class="header-actions">
          {isGroup && (
            <button type="button" aria-expanded={showMembers} onClick={() => setShowMembers(!showMembers)}>
              Members
            </button>
          )}
          {info.kind === "direct" && info.peerId && (
            <button
              type="button"
              class={blocked ? "" : "danger"}
              onClick={() => {
                if (blocked || window.confirm(`Block ${info.peerId}? Neither of you can write to the other.`)) {
                  void controller.contacts.block(info.peerId, !blocked);
                }
              }}
            >
              {blocked ? "Unblock" : "Block"}
            </button>
          )}
          {!isTopic && (
            <button type="button" aria-pressed={info.muted} onClick={() => void controller.messages.mute(info.id, !info.muted)}>
              {info.muted ? "Unmute" : "Mute"}
            </button>
          )}
          {isGroup && (
            <button
              type="button"
              class="danger"
              onClick={async () => {
                if (await controller.groups.leave(info.groupId)) onBack();
              }}
            >
              Leave group
            </button>
          )}
          {isTopic && info.topic && !info.closed && (
            <>
              <button type="button" onClick={() => void controller.topics.mute(info.topic!.topicId, !info.muted)}>
                {info.muted ? "Unmute" : "Mute"}
              </button>
              <button type="button" class="danger" onClick={() => void controller.topics.leave(info.topic!.topicId)}>
                Leave topic
              </button>
            </>
          )}
        </div>
      </header>
      {info.request && !blocked && (
        <div class="request-banner" role="region" aria-label="Message request">
          <p>
            <strong>{info.title || info.peerId}</strong> is not in your contacts. Accept to chat (writing back accepts too), or block them.
          </p>
          <button type="button" class="primary" onClick={() => void controller.messages.accept(info.id)}>
            Accept
          </button>
        </div>
      )}
      <div class="conversation-body">
        <div class="conversation-main">
          <MessageList
            label={`Messages in ${info.title}`}
            me={store.me}
            messages={thread.messages}
            pending={store.pendingIn(conversationId)}
            loaded={thread.loaded}
            hasMore={thread.hasMoreBefore}
            onLoadOlder={() => controller.messages.older(conversationId)}
            focusSeq={focusSeq}
            showSenders={isGroup}
            annotate={(message) => (message.seq === lastOwnSeq(thread, store.me) ? <ReadLine thread={thread} seq={message.seq} me={store.me} group={isGroup} /> : null)}
            onRetry={(id) => controller.messages.retry(id)}
            onDiscard={(id) => controller.messages.discard(id)}
            onDelete={(id) => void controller.messages.remove(id)}
            onEdit={(id, text) => controller.messages.edit(id, text)}
            onReply={info.closed ? undefined : setReplying}
            onReact={info.closed ? undefined : (id, emoji, on) => void controller.messages.react(id, emoji, on)}
            onWho={(id) => controller.messages.reactors(id)}
            blocked={store.blocked}
          />
          {replying && (
            <div class="replying" role="status">
              <span>
                Replying to <strong>{replying.sender}</strong>: {quoteOf(replying).excerpt}
              </span>
              <button type="button" class="link" aria-label="Cancel the reply" onClick={() => setReplying(undefined)}>
                Cancel
              </button>
            </div>
          )}
          {typists.length > 0 && (
            <p class="typing" aria-live="polite">
              {listNames(typists)} {typists.length === 1 ? "is" : "are"} typing…
            </p>
          )}
          <Composer
            label={`Message to ${info.title}`}
            value={draft}
            onInput={(value) => {
              setDraft(value);
              if (value.trim() && !info.closed) controller.messages.typing(conversationId);
            }}
            autoFocus
            closedReason={info.closed ? "This conversation is closed: its history stays readable, but nobody can write here any more." : undefined}
            onSend={(text) => {
              controller.messages.send(conversationId, text, replying && quoteOf(replying));
              setDraft("");
              setReplying(undefined);
            }}
          />
        </div>
        {isGroup && showMembers && (
          <MembersPanel controller={controller} groupId={info.groupId} onClose={() => setShowMembers(false)} onGone={onBack} />
        )}
      </div>
    </div>
  );
}

/** Seq of the user's latest message held (read receipts show under it). */
function lastOwnSeq(thread: Thread, me: string): number {
  for (let i = thread.messages.length - 1; i >= 0; i--) {
    const message = thread.messages[i]!;
    if (message.sender === me) return message.seq;
  }
  return 0;
}

/** Read receipts: who has read up to the user's latest message. */
function ReadLine({ thread, seq, me, group }: { thread: Thread; seq: number; me: string; group: boolean }) {
  const readers = [...thread.readBy].filter(([user, read]) => user !== me && read >= seq).map(([user]) => user);
  if (!readers.length) return null;
  return (
    <span class="read-line">
      {" · "}
      <span data-testid="read-receipt">{group ? `Read by ${listNames(readers.sort())}` : "Read"}</span>
    </span>
  );
}
