// A conversation's messages, oldest at the top: scroll up for older pages,
// new messages keep the view at the bottom unless the reader scrolled away.

import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";

import type { ChatMessage } from "../state/model";
import { seqOf, shownText, startsBlock } from "../state/messages";
import type { PendingSend } from "../state/store";
import { fullTime, shortTime } from "./format";

interface Props {
  label: string;
  me: string;
  messages: ChatMessage[];
  pending?: PendingSend[];
  loaded: boolean;
  hasMore: boolean;
  onLoadOlder?: () => Promise<void>;
  /** A message to bring into view once the list is loaded. */
  focusSeq?: number;
  /** Show sender names (groups). */
  showSenders?: boolean;
  /** Under a message (topic copy status). */
  annotate?: (message: ChatMessage) => ComponentChildren;
  /** Makes each message a button (topic window: copy into the input box). */
  onPick?: (message: ChatMessage) => void;
  pickLabel?: string;
  footer?: ComponentChildren;
  empty?: string;
  onRetry?: (clientMsgId: string) => void;
  onDiscard?: (clientMsgId: string) => void;
  /** Offers "Delete" on the reader's own messages. */
  onDelete?: (messageId: string) => void;
  /** Offers "Edit" on the reader's own messages; resolves to whether it was saved. */
  onEdit?: (messageId: string, text: string) => Promise<boolean>;
  /** Offers "Reply" on every message. */
  onReply?: (message: ChatMessage) => void;
  /** Offers reactions on every message: adds (`on`) or takes back the reader's emoji. */
  onReact?: (messageId: string, emoji: string, on: boolean) => void;
  /** Who reacted to a message, and with what. */
  onWho?: (messageId: string) => Promise<{ userId: string; emoji: string }[]>;
  /** Senders the reader blocked: their messages are folded away until shown. */
  blocked?: Set<string>;
  compact?: boolean;
}

/** The emoji the picker offers. */
const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🎉"];

export function MessageList(props: Props) {
  const box = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const anchor = useRef<number>();
  const [loadingOlder, setLoadingOlder] = useState(false);
  const first = props.messages[0]?.seq;
  const last = props.messages[props.messages.length - 1]?.seq;
  const pendingCount = props.pending?.length ?? 0;

  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    if (anchor.current !== undefined) {
      // An older page went in above: keep what the reader was looking at in place.
      el.scrollTop = el.scrollHeight - anchor.current;
      anchor.current = undefined;
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [first, last, pendingCount, props.loaded]);

  useEffect(() => {
    if (props.loaded && props.focusSeq) void jumpTo(props.focusSeq);
  }, [props.loaded, props.focusSeq]);

  async function loadOlder() {
    const el = box.current;
    if (!props.onLoadOlder || loadingOlder || !props.hasMore || !el) return;
    setLoadingOlder(true);
    anchor.current = el.scrollHeight - el.scrollTop;
    try {
      await props.onLoadOlder();
    } finally {
      setLoadingOlder(false);
    }
  }

  /** Brings a quoted message into view (loading older pages until it is held) and marks it a moment. */
  async function jumpTo(seq: number) {
    const el = box.current;
    if (!el || !seq) return;
    const find = () => el.querySelector<HTMLElement>(`li.message[data-seq="${seq}"]`);
    for (let pages = 0; !find() && props.onLoadOlder && props.hasMore && pages < 25; pages++) {
      await props.onLoadOlder();
    }
    const target = find();
    if (!target) return;
    stick.current = false;
    target.scrollIntoView({ block: "center" });
    target.classList.add("highlight");
    setTimeout(() => target.classList.remove("highlight"), 1500);
  }

  function onScroll() {
    const el = box.current;
    if (!el) return;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    if (el.scrollTop < 80) void loadOlder();
  }

  return (
    <div class={`messages${props.compact ? " compact" : ""}`} ref={box} onScroll={onScroll}>
      {props.loaded && props.hasMore && (
        <div class="older">
          <button type="button" class="link" onClick={() => void loadOlder()} disabled={loadingOlder}>
            {loadingOlder ? "Loading older messages…" : "Load older messages"}
          </button>
        </div>
      )}
      {!props.loaded && <p class="loading">Loading messages…</p>}
      {props.loaded && props.messages.length === 0 && pendingCount === 0 && (
        <p class="empty">{props.empty ?? "No messages yet. Say hello!"}</p>
      )}
      <ol class="message-items" role="log" aria-label={props.label} aria-busy={loadingOlder || !props.loaded}>
        {props.messages.map((message, i) => (
          // A reaction's notice changes the message it names; it is no line of its own.
          message.system?.kind === "reactions-changed" ? null : <MessageItem
            key={message.seq}
            message={message}
            mine={message.sender === props.me}
            me={props.me}
            showSender={!!props.showSenders && startsBlock(props.messages[i - 1], message)}
            annotate={props.annotate}
            onPick={props.onPick}
            pickLabel={props.pickLabel}
            onDelete={props.onDelete}
            onEdit={props.onEdit}
            onReply={props.onReply}
            onReact={props.onReact}
            onWho={props.onWho}
            fromBlocked={!!props.blocked?.has(message.sender)}
            onJump={(seq) => void jumpTo(seq)}
          />
        ))}
        {props.pending?.map((send) => (
          <li key={send.clientMsgId} class={`message mine pending ${send.state}`} data-pending={send.state}>
            <div class="bubble">
              <p class="text">{send.text}</p>
            </div>
            <div class="meta">
              {send.state === "sending" ? (
                <span>Sending…</span>
              ) : (
                <span class="failed">
                  Not sent: {send.error}{" "}
                  <button type="button" class="link" onClick={() => props.onRetry?.(send.clientMsgId)}>
                    Retry
                  </button>{" "}
                  <button type="button" class="link" onClick={() => props.onDiscard?.(send.clientMsgId)}>
                    Discard
                  </button>
                </span>
              )}
            </div>
          </li>
        ))}
      </ol>
      {props.footer}
    </div>
  );
}

function MessageItem({
  message,
  mine,
  me,
  showSender,
  annotate,
  onPick,
  pickLabel,
  onDelete,
  onEdit,
  onReply,
  onReact,
  onWho,
  fromBlocked,
  onJump,
}: {
  message: ChatMessage;
  mine: boolean;
  me: string;
  showSender: boolean;
  annotate?: (message: ChatMessage) => ComponentChildren;
  onPick?: (message: ChatMessage) => void;
  pickLabel?: string;
  onDelete?: (messageId: string) => void;
  onEdit?: (messageId: string, text: string) => Promise<boolean>;
  onReply?: (message: ChatMessage) => void;
  onReact?: (messageId: string, emoji: string, on: boolean) => void;
  onWho?: (messageId: string) => Promise<{ userId: string; emoji: string }[]>;
  fromBlocked?: boolean;
  onJump?: (seq: number) => void;
}) {
  const [draft, setDraft] = useState<string | undefined>(undefined);
  const [revealed, setRevealed] = useState(false);
  const [picking, setPicking] = useState(false);
  const [who, setWho] = useState<string | undefined>(undefined);
  if (message.system || !message.sender) {
    return (
      <li class="message system" data-seq={message.seq}>
        <span>{message.text}</span> <time dateTime={new Date(message.sentAtMs).toISOString()}>{shortTime(message.sentAtMs)}</time>
      </li>
    );
  }
  if (fromBlocked && !revealed) {
    return (
      <li class="message theirs folded" data-seq={message.seq} data-sender={message.sender}>
        <div class="bubble">
          <p class="text deleted">Message from someone you blocked</p>
        </div>
        <div class="meta">
          <button type="button" class="link" onClick={() => setRevealed(true)}>
            Show
          </button>
        </div>
      </li>
    );
  }
  const quote = message.replyTo;
  const quoted = quote && (
    <>
      <span class="quote-sender">{quote.sender}</span>{" "}
      <span class={quote.deleted ? "quote-text deleted" : "quote-text"}>{quote.deleted ? "message deleted" : quote.excerpt}</span>
    </>
  );
  const body = (
    <>
      {showSender && !mine && <span class="sender">{message.sender}</span>}
      {quote &&
        (onPick ? (
          <span class="quote">{quoted}</span>
        ) : (
          <button type="button" class="quote" aria-label={`Replying to ${quote.sender}: show that message`} onClick={() => onJump?.(seqOf(quote.messageId))}>
            {quoted}
          </button>
        ))}
      <p class={message.deleted ? "text deleted" : "text"}>{shownText(message)}</p>
    </>
  );
  const changeable = mine && !message.deleted;
  if (draft !== undefined && onEdit) {
    const save = async (event: Event) => {
      event.preventDefault();
      if (await onEdit(message.messageId, draft)) setDraft(undefined);
    };
    return (
      <li class="message mine editing" data-seq={message.seq}>
        <form class="bubble edit" aria-label="Edit message" onSubmit={(event) => void save(event)}>
          <textarea aria-label="New text" rows={2} value={draft} onInput={(event) => setDraft(event.currentTarget.value)} />
          <div class="edit-actions">
            <button type="submit">Save</button>
            <button type="button" class="link" onClick={() => setDraft(undefined)}>
              Cancel
            </button>
          </div>
        </form>
      </li>
    );
  }
  return (
    <li
      class={`message ${mine ? "mine" : "theirs"}${!mine && message.mentions?.includes(me) ? " mentioned" : ""}`}
      data-seq={message.seq}
      data-sender={message.sender}
    >
      {onPick ? (
        <button
          type="button"
          class="bubble pickable"
          title={pickLabel}
          aria-label={`${mine ? "You" : message.sender}: ${shownText(message)}. ${pickLabel ?? ""}`}
          onClick={() => onPick(message)}
        >
          {body}
        </button>
      ) : (
        <div class="bubble">{body}</div>
      )}
      {!message.deleted && (message.reactions?.length || picking || who) && (
        <div class="reactions" role="group" aria-label="Reactions">
          {message.reactions?.map((r) => (
            <button
              type="button"
              key={r.emoji}
              class={r.mine ? "reaction mine" : "reaction"}
              aria-pressed={r.mine}
              aria-label={`${r.emoji} ${r.count}`}
              title={r.mine ? "Take yours back" : "React with this too"}
              disabled={!onReact}
              onClick={() => onReact?.(message.messageId, r.emoji, !r.mine)}
            >
              {r.emoji} {r.count}
            </button>
          ))}
          {picking &&
            QUICK_REACTIONS.map((emoji) => (
              <button
                type="button"
                key={`pick-${emoji}`}
                class="reaction pick"
                aria-label={`React ${emoji}`}
                onClick={() => {
                  setPicking(false);
                  const mine = message.reactions?.some((r) => r.emoji === emoji && r.mine);
                  onReact?.(message.messageId, emoji, !mine);
                }}
              >
                {emoji}
              </button>
            ))}
          {who !== undefined && <span class="reactors">{who || "No reactions"}</span>}
        </div>
      )}
      <div class="meta">
        <time dateTime={new Date(message.sentAtMs).toISOString()} title={fullTime(message.sentAtMs)}>
          {shortTime(message.sentAtMs)}
        </time>
        {message.topic?.forwardedFrom && <span class="forwarded"> · copied</span>}
        {message.editedAtMs && !message.deleted && (
          <span class="edited" title={`Edited ${fullTime(message.editedAtMs)}`}>
            {" · edited"}
          </span>
        )}
        {onReply && !message.deleted && (
          <>
            {" · "}
            <button type="button" class="link reply" aria-label={`Reply to “${message.text}”`} onClick={() => onReply(message)}>
              Reply
            </button>
          </>
        )}
        {onReact && !message.deleted && (
          <>
            {" · "}
            <button type="button" class="link react" aria-expanded={picking} aria-label={`React to “${message.text}”`} onClick={() => setPicking(!picking)}>
              React
            </button>
          </>
        )}
        {onWho && !message.deleted && !!message.reactions?.length && (
          <>
            {" · "}
            <button
              type="button"
              class="link who"
              aria-label={`Who reacted to “${message.text}”`}
              onClick={() =>
                void onWho(message.messageId).then((list) => setWho(list.map((r) => `${r.userId} ${r.emoji}`).join(", ")))
              }
            >
              Who reacted
            </button>
          </>
        )}
        {onEdit && changeable && (
          <>
            {" · "}
            <button type="button" class="link edit" aria-label={`Edit “${message.text}”`} onClick={() => setDraft(message.text)}>
              Edit
            </button>
          </>
        )}
        {onDelete && changeable && (
          <>
            {" · "}
            <button
              type="button"
              class="link delete"
              aria-label={`Delete “${message.text}” for everyone`}
              onClick={() => {
                if (window.confirm("Delete this message for everyone?")) onDelete(message.messageId);
              }}
            >
              Delete
            </button>
          </>
        )}
        {annotate?.(message)}
      </div>
    </li>
  );
}
