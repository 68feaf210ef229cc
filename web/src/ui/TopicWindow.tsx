// The owner's one-to-many window: every contact's thread side by side, one
// shared input box, checkboxes for a partial send, each copy's status
// (delivered / read / replied), click a message to copy it into the box,
// add and remove contacts in place.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";

import type { BindingAnswer, Controller } from "../app/controller";
import type { ChatMessage, CopyStatus, TopicContactInfo, TopicInfo } from "../state/model";
import { copyStatus, reachable, statusLabel } from "../state/topics";
import { Composer } from "./Composer";
import { listNames, parseIds } from "./format";
import { MessageList } from "./MessageList";

interface Props {
  controller: Controller;
  topicId: string;
  onBack: () => void;
}

interface Copied {
  messageId: string;
  from: string;
  text: string;
}

export function TopicWindow({ controller, topicId, onBack }: Props) {
  const store = controller.store!;
  const topic = store.topics.get(topicId);
  const [draft, setDraft] = useState("");
  const [copied, setCopied] = useState<Copied>();
  const [deselected, setDeselected] = useState<Set<string>>(new Set());
  const [answers, setAnswers] = useState<BindingAnswer[]>([]);
  const input = useRef<HTMLTextAreaElement>(null);

  const contacts = useMemo(() => orderContacts(topic), [topic]);
  const threadIds = contacts.map((c) => c.conversationId);
  const idsKey = threadIds.join(",");

  useEffect(() => {
    controller.setOnScreen(threadIds);
    void controller.topics.load(topicId);
    return () => controller.setOnScreen([]);
  }, [topicId, idsKey]);

  if (!topic) {
    return (
      <div class="topic-window">
        <p class="loading">Loading…</p>
      </div>
    );
  }

  const open = contacts.filter(reachable);
  const chosen = open.filter((c) => !deselected.has(c.userId));
  const everyone = chosen.length === open.length;

  function toggle(userId: string, on: boolean) {
    const next = new Set(deselected);
    if (on) next.delete(userId);
    else next.add(userId);
    setDeselected(next);
  }

  function pick(message: ChatMessage, from: string) {
    setCopied({ messageId: message.messageId, from, text: message.text });
    setDraft(message.text);
    input.current?.focus();
  }

  function send(text: string) {
    if (!chosen.length) return;
    controller.topics.send(topicId, text, everyone ? [] : chosen.map((c) => c.userId), copied?.messageId);
    setDraft("");
    setCopied(undefined);
  }

  const pending = store.pendingIn(`topic:${topicId}`);
  return (
    <div class="topic-window" data-topic={topicId}>
      <header class="conversation-header">
        <button type="button" class="back" onClick={onBack} aria-label="Back to conversations">
          ‹
        </button>
        <div class="titles">
          <h1 tabIndex={-1} class="conversation-title">
            <span class="tag topic">Topic</span>
            {topic.name}
          </h1>
          <p class="conversation-subtitle">
            {topic.deleted
              ? "Deleted: threads stay readable"
              : `${open.length} ${open.length === 1 ? "contact" : "contacts"} · each gets a private copy; replies come back to their own thread`}
          </p>
        </div>
        <TopicSettings controller={controller} topic={topic} />
      </header>

      {!topic.deleted && (
        <AddContacts
          onAdd={async (ids) => setAnswers(await controller.topics.addContacts(topicId, ids))}
          answers={answers}
        />
      )}

      <div class="threads" role="list" aria-label={`Threads of ${topic.name}`}>
        {contacts.length === 0 && <p class="empty">No contacts in this topic yet. Add some above.</p>}
        {contacts.map((contact) => {
          const thread = store.thread(contact.conversationId);
          const canSend = reachable(contact) && !topic.deleted;
          const online = store.presence.get(contact.userId);
          return (
            <section
              key={contact.userId}
              role="listitem"
              class={`thread-card state-${contact.state}`}
              aria-label={`Thread with ${contact.userId}`}
              data-contact={contact.userId}
            >
              <header class="thread-header">
                <label class="thread-check">
                  <input
                    type="checkbox"
                    checked={canSend && !deselected.has(contact.userId)}
                    disabled={!canSend}
                    onChange={(e) => toggle(contact.userId, e.currentTarget.checked)}
                    aria-label={`Send to ${contact.userId}`}
                  />
                  <span class="thread-name">{contact.displayName || contact.userId}</span>
                </label>
                {online !== undefined && (
                  <span class={`presence ${online ? "on" : "off"}`} title={online ? "online" : "offline"}>
                    <span class="visually-hidden">{online ? "online" : "offline"}</span>
                  </span>
                )}
                {contact.state !== "bound" && (
                  <span class={`tag state ${contact.state}`}>
                    {contact.state === "not-mutual" ? "no longer a mutual contact" : contact.state}
                  </span>
                )}
                {(thread?.info.unread ?? 0) > 0 && (
                  <span class="unread" aria-label={`${thread!.info.unread} unread`}>
                    {thread!.info.unread}
                  </span>
                )}
                {canSend && (
                  <button
                    type="button"
                    class="link danger"
                    aria-label={`Remove ${contact.userId} from the topic`}
                    onClick={async () => setAnswers(await controller.topics.removeContact(topicId, contact.userId))}
                  >
                    Remove
                  </button>
                )}
              </header>
              <MessageList
                compact
                label={`Thread with ${contact.userId}`}
                me={store.me}
                messages={thread?.messages ?? []}
                loaded={thread?.loaded ?? false}
                hasMore={thread?.hasMoreBefore ?? false}
                onLoadOlder={() => controller.messages.older(contact.conversationId)}
                empty="Nothing here yet."
                pickLabel="Click to copy into the input box"
                onPick={(message) => pick(message, contact.userId)}
                annotate={(message) =>
                  thread && message.sender === store.me ? <CopyStatusChip status={copyStatus(thread, message, contact.userId)} /> : null
                }
              />
            </section>
          );
        })}
      </div>

      <div class="topic-compose">
        {pending.map((send) => (
          <p key={send.clientMsgId} class={`pending-line ${send.state}`} role="status">
            {send.state === "sending" ? (
              <>Sending “{send.text}”…</>
            ) : (
              <>
                Not sent: {send.error}{" "}
                <button type="button" class="link" onClick={() => controller.messages.retry(send.clientMsgId)}>
                  Retry
                </button>{" "}
                <button type="button" class="link" onClick={() => controller.messages.discard(send.clientMsgId)}>
                  Discard
                </button>
              </>
            )}
          </p>
        ))}
        {copied && (
          <p class="copied" role="status">
            Copied from {copied.from}’s thread: edit it and send to whom you choose.{" "}
            <button
              type="button"
              class="link"
              onClick={() => {
                setCopied(undefined);
                setDraft("");
              }}
            >
              Clear
            </button>
          </p>
        )}
        <div class="recipients">
          <span data-testid="recipients">
            {chosen.length === 0
              ? "No contact chosen"
              : everyone
                ? `To all ${open.length} ${open.length === 1 ? "contact" : "contacts"}`
                : `To ${chosen.length} of ${open.length}: ${listNames(chosen.map((c) => c.userId), 4)}`}
          </span>
          <button type="button" class="link" onClick={() => setDeselected(new Set())} disabled={everyone}>
            All
          </button>
          <button type="button" class="link" onClick={() => setDeselected(new Set(open.map((c) => c.userId)))} disabled={chosen.length === 0}>
            None
          </button>
        </div>
        <Composer
          label={`Message to the chosen contacts of ${topic.name}`}
          value={draft}
          onInput={(value) => {
            setDraft(value);
            if (!value) setCopied(undefined);
          }}
          inputRef={input}
          autoFocus
          disabled={chosen.length === 0}
          sendLabel={everyone ? "Send to all" : `Send to ${chosen.length}`}
          closedReason={topic.deleted ? "This topic was deleted: nobody can write here any more." : undefined}
          onSend={send}
        />
      </div>
    </div>
  );
}

function CopyStatusChip({ status }: { status: CopyStatus }) {
  const label = statusLabel(status);
  const yes = (flag: boolean) => (flag ? "yes" : "no");
  return (
    <span
      class={`copy-status ${label}`}
      data-status={label}
      title={`Delivered: ${yes(status.delivered)} · Read: ${yes(status.read)} · Replied: ${yes(status.replied)}`}
    >
      {" · "}
      {label === "sent" ? "sent" : `✓ ${label}`}
    </span>
  );
}

/** Bound contacts first, then muted, no longer mutual, left, removed; by name within each. */
function orderContacts(topic: TopicInfo | undefined): TopicContactInfo[] {
  if (!topic) return [];
  const rank = { bound: 0, muted: 1, "not-mutual": 2, left: 3, removed: 4 } as const;
  return [...topic.contacts].sort((a, b) => rank[a.state] - rank[b.state] || a.userId.localeCompare(b.userId));
}

function AddContacts({ onAdd, answers }: { onAdd: (ids: string[]) => Promise<void>; answers: BindingAnswer[] }) {
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <div class="topic-bar">
      <form
        class="inline-form"
        onSubmit={async (e) => {
          e.preventDefault();
          const ids = parseIds(text);
          if (!ids.length) return;
          setBusy(true);
          await onAdd(ids);
          setBusy(false);
          setText("");
        }}
      >
        <label class="field inline">
          <span>Add contacts</span>
          <input value={text} placeholder="user ids, e.g. ann, ben" onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={busy || !text.trim()}>
          Add
        </button>
      </form>
      <ul class="binding-answers" role="status" aria-live="polite">
        {answers.map((answer) => (
          <li key={answer.userId} class={answer.ok ? "ok" : "not-ok"}>
            {answer.message}
          </li>
        ))}
      </ul>
    </div>
  );
}

function TopicSettings({ controller, topic }: { controller: Controller; topic: TopicInfo }) {
  const [name, setName] = useState(topic.name);
  const [confirming, setConfirming] = useState(false);
  if (topic.deleted) return null;
  return (
    <details class="settings">
      <summary>Topic settings</summary>
      <div class="settings-body">
        <form
          class="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            if (name.trim() && name.trim() !== topic.name) void controller.topics.rename(topic.id, name);
          }}
        >
          <label class="field">
            <span>Name</span>
            <input value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </label>
          <button type="submit">Rename</button>
        </form>
        {confirming ? (
          <p>
            Delete “{topic.name}”? Every contact’s thread stays readable, but nobody can write in it.{" "}
            <button type="button" class="danger" onClick={() => void controller.topics.delete(topic.id)}>
              Delete topic
            </button>{" "}
            <button type="button" onClick={() => setConfirming(false)}>
              Keep it
            </button>
          </p>
        ) : (
          <button type="button" class="danger" onClick={() => setConfirming(true)}>
            Delete topic…
          </button>
        )}
      </div>
    </details>
  );
}
