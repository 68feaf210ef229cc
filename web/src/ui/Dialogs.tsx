// Start a chat, create or join a group, create a topic, manage contacts.

import { useEffect, useState } from "preact/hooks";

import type { BindingAnswer, Controller } from "../app/controller";
import type { ChatMessage, GroupHistory, GroupPolicy, SearchHit } from "../state/model";
import type { Place } from "../state/sidebar";
import { parseIds, shortTime } from "./format";
import { Modal } from "./Modal";

export type DialogKind =
  | "new-chat"
  | "new-group"
  | "join-group"
  | "new-topic"
  | "contacts"
  | "profile"
  | "search"
  | undefined;

interface Props {
  controller: Controller;
  dialog: DialogKind;
  onClose: () => void;
  onOpen: (place: Place) => void;
}

export function Dialogs({ controller, dialog, onClose, onOpen }: Props) {
  const done = (place?: Place) => {
    onClose();
    if (place) onOpen(place);
  };
  switch (dialog) {
    case "new-chat":
      return <NewChat controller={controller} onClose={onClose} onDone={done} />;
    case "new-group":
      return <NewGroup controller={controller} onClose={onClose} onDone={done} />;
    case "join-group":
      return <JoinGroup controller={controller} onClose={onClose} onDone={done} />;
    case "new-topic":
      return <NewTopic controller={controller} onClose={onClose} onDone={done} />;
    case "contacts":
      return <Contacts controller={controller} onClose={onClose} onDone={done} />;
    case "profile":
      return <Profile controller={controller} onClose={onClose} onDone={done} />;
    case "search":
      return <SearchMessages controller={controller} onClose={onClose} onDone={done} />;
    default:
      return null;
  }
}

interface DialogProps {
  controller: Controller;
  onClose: () => void;
  onDone: (place?: Place) => void;
}

/** Searches the reader's history; a hit opens its conversation at the message. */
function SearchMessages({ controller, onClose, onDone }: DialogProps) {
  const [query, setQuery] = useState("");
  const [hits, setHits] = useState<SearchHit[] | undefined>(undefined);
  const [next, setNext] = useState("");
  const [busy, setBusy] = useState(false);
  const store = controller.store!;

  async function run(more: boolean) {
    setBusy(true);
    const page = await controller.messages.search(query.trim(), more ? next : "");
    setBusy(false);
    if (!page) return;
    setHits(more ? [...(hits ?? []), ...page.hits] : page.hits);
    setNext(page.next);
  }

  function placeOf(message: ChatMessage): Place {
    // A topic's owner reads its threads in the topic's window.
    if (message.topic && message.topic.ownerId === store.me) return { kind: "topic", id: message.topic.topicId };
    return { kind: "conversation", id: message.conversationId, seq: message.seq };
  }

  return (
    <Modal title="Search messages" onClose={onClose}>
      <form
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          void run(false);
        }}
      >
        <label class="field">
          <span>Words</span>
          <input type="search" value={query} autocapitalize="none" onInput={(e) => setQuery(e.currentTarget.value)} />
        </label>
        <p class="hint">Finds messages with every word, each as the start of a word, newest first.</p>
        <div class="modal-actions">
          <button type="button" onClick={onClose}>
            Close
          </button>
          <button class="primary" type="submit" disabled={busy || !query.trim()}>
            Search
          </button>
        </div>
      </form>
      {hits && hits.length === 0 && <p class="hint">No messages found.</p>}
      {hits && hits.length > 0 && (
        <ul class="search-hits" aria-label="Search results">
          {hits.map((hit) => (
            <li key={hit.message.messageId}>
              <button type="button" class="search-hit" onClick={() => onDone(placeOf(hit.message))}>
                <span class="hit-where">
                  {store.thread(hit.message.conversationId)?.info.title || hit.message.conversationId} ·{" "}
                  {hit.message.sender} · {shortTime(hit.message.sentAtMs)}
                </span>
                <span class="hit-text">
                  {hit.pieces.map((piece, i) => (piece.matched ? <mark key={i}>{piece.text}</mark> : piece.text))}
                </span>
              </button>
            </li>
          ))}
        </ul>
      )}
      {next && (
        <button type="button" class="link" disabled={busy} onClick={() => void run(true)}>
          More results
        </button>
      )}
    </Modal>
  );
}

function Profile({ controller, onClose, onDone }: DialogProps) {
  const [name, setName] = useState(controller.session?.displayName ?? "");
  const [busy, setBusy] = useState(false);
  return (
    <Modal title="Your profile" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          const saved = await controller.rename(name);
          setBusy(false);
          if (saved) onDone();
        }}
      >
        <label class="field">
          <span>Display name</span>
          <input value={name} maxLength={80} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <p class="hint">Empty: your user id. People see it in their contacts and conversations.</p>
        <PushSettings controller={controller} />
        <div class="modal-actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy}>
            Save
          </button>
        </div>
      </form>
    </Modal>
  );
}

/**
 * Pushes to this browser while no page is open (Web Push), offered where
 * the deployment and the browser can do it.
 */
function PushSettings({ controller }: { controller: Controller }) {
  const [state, setState] = useState<{ key: string; on: boolean; previews: boolean } | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    let live = true;
    void controller.pushState().then((found) => live && setState(found));
    return () => {
      live = false;
    };
  }, [controller]);
  if (!state) return null;
  const change = async (on: boolean, previews: boolean) => {
    setBusy(true);
    const now = await controller.setPush(state.key, on, previews);
    setState({ ...state, on: now, previews });
    setBusy(false);
  };
  return (
    <fieldset class="push-settings">
      <legend>When this page is closed</legend>
      <label class="checkbox">
        <input
          type="checkbox"
          checked={state.on}
          disabled={busy}
          onChange={(e) => void change(e.currentTarget.checked, state.previews)}
        />
        <span>Push notifications to this browser</span>
      </label>
      <label class="checkbox">
        <input
          type="checkbox"
          checked={state.previews}
          disabled={busy || !state.on}
          onChange={(e) => void change(true, e.currentTarget.checked)}
        />
        <span>Show message text in them</span>
      </label>
      <p class="hint" role="status">
        {state.on ? "This browser is told of new messages while you are away." : "Off in this browser."}
      </p>
    </fieldset>
  );
}

/** Finds people by exact id, or by the start of a name among those one shares a group with. */
function FindPeople({ controller, onPick }: { controller: Controller; onPick: (userId: string) => void }) {
  const [query, setQuery] = useState("");
  const [found, setFound] = useState<{ userId: string; displayName: string }[] | undefined>(undefined);
  const search = async () => {
    if (query.trim()) setFound(await controller.contacts.find(query.trim()));
  };
  return (
    <div class="find-people">
      <label class="field">
        <span>Find people</span>
        <input
          type="search"
          value={query}
          placeholder="Name or user id"
          onInput={(e) => setQuery(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter") {
              e.preventDefault();
              void search();
            }
          }}
        />
      </label>
      <button type="button" onClick={() => void search()} disabled={!query.trim()}>
        Search
      </button>
      {found && (
        <ul class="found" aria-label="People found">
          {found.length === 0 && <li class="empty">Nobody found.</li>}
          {found.map((person) => (
            <li key={person.userId}>
              <button type="button" class="link" onClick={() => onPick(person.userId)}>
                {person.displayName} <span class="me-id">@{person.userId}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function NewChat({ controller, onClose, onDone }: DialogProps) {
  const [userId, setUserId] = useState("");
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <Modal title="New chat" onClose={onClose}>
      <FindPeople controller={controller} onPick={setUserId} />
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          const id = await controller.messages.sendToUser(userId, text.trim());
          setBusy(false);
          if (id) onDone({ kind: "conversation", id });
        }}
      >
        <label class="field">
          <span>User id</span>
          <input required value={userId} autocapitalize="none" onInput={(e) => setUserId(e.currentTarget.value)} />
        </label>
        <label class="field">
          <span>First message</span>
          <textarea required rows={3} value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <div class="modal-actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy || !userId.trim() || !text.trim()}>
            Send
          </button>
        </div>
      </form>
    </Modal>
  );
}

function NewGroup({ controller, onClose, onDone }: DialogProps) {
  const [name, setName] = useState("");
  const [policy, setPolicy] = useState<GroupPolicy>("open");
  // Unset until chosen: then it follows the policy (open: all, invite-only: from the join).
  const [history, setHistory] = useState<GroupHistory | undefined>(undefined);
  const shownHistory: GroupHistory = history ?? (policy === "invite-only" ? "from-join" : "all");
  const [invite, setInvite] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <Modal title="New group" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          const id = await controller.groups.create(name, policy, shownHistory, parseIds(invite));
          setBusy(false);
          if (id) onDone({ kind: "conversation", id });
        }}
      >
        <label class="field">
          <span>Group name</span>
          <input required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <fieldset class="field">
          <legend>Who can join</legend>
          <label class="radio">
            <input type="radio" name="policy" checked={policy === "open"} onChange={() => setPolicy("open")} />
            Anyone with the group id
          </label>
          <label class="radio">
            <input
              type="radio"
              name="policy"
              checked={policy === "invite-only"}
              onChange={() => setPolicy("invite-only")}
            />
            Only invited users
          </label>
        </fieldset>
        <fieldset class="field">
          <legend>New members can read</legend>
          <label class="radio">
            <input
              type="radio"
              name="history"
              checked={shownHistory === "all"}
              onChange={() => setHistory("all")}
            />
            Everything said before they joined
          </label>
          <label class="radio">
            <input
              type="radio"
              name="history"
              checked={shownHistory === "from-join"}
              onChange={() => setHistory("from-join")}
            />
            Only messages from when they join
          </label>
        </fieldset>
        <label class="field">
          <span>Invite (user ids, optional)</span>
          <input value={invite} placeholder="ann, ben" onInput={(e) => setInvite(e.currentTarget.value)} />
        </label>
        <div class="modal-actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy || !name.trim()}>
            Create group
          </button>
        </div>
      </form>
    </Modal>
  );
}

function JoinGroup({ controller, onClose, onDone }: DialogProps) {
  const [groupId, setGroupId] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <Modal title="Join a group" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          const id = await controller.groups.join(groupId);
          setBusy(false);
          if (id) onDone({ kind: "conversation", id });
        }}
      >
        <label class="field">
          <span>Group id</span>
          <input required value={groupId} autocapitalize="none" onInput={(e) => setGroupId(e.currentTarget.value)} />
        </label>
        <p class="hint">Members find the id in the group’s member list.</p>
        <div class="modal-actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy || !groupId.trim()}>
            Join
          </button>
        </div>
      </form>
    </Modal>
  );
}

function NewTopic({ controller, onClose, onDone }: DialogProps) {
  const store = controller.store!;
  useEffect(() => void controller.contacts.refresh(), []);
  const mutual = store.contacts.filter((c) => c.mutual);
  const [name, setName] = useState("");
  const [chosen, setChosen] = useState<Set<string>>(new Set());
  const [others, setOthers] = useState("");
  const [answers, setAnswers] = useState<BindingAnswer[]>([]);
  const [busy, setBusy] = useState(false);
  return (
    <Modal title="New topic" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          const contacts = [...new Set([...chosen, ...parseIds(others)])];
          const result = await controller.topics.create(name, contacts);
          setBusy(false);
          const failed = result.answers.filter((a) => !a.ok);
          if (result.topicId && !failed.length) onDone({ kind: "topic", id: result.topicId });
          else setAnswers(result.answers);
          if (result.topicId && failed.length) setName("");
        }}
      >
        <p class="hint">
          Send once, and each contact gets a private copy; their replies come back to you only, one thread per
          contact. Contacts must be mutual (both added each other).
        </p>
        <label class="field">
          <span>Topic name</span>
          <input required value={name} placeholder="Badminton Saturday" onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <fieldset class="field">
          <legend>Contacts</legend>
          {mutual.length === 0 && <p class="hint">No mutual contacts yet: add contacts first.</p>}
          {mutual.map((contact) => (
            <label key={contact.userId} class="checkbox">
              <input
                type="checkbox"
                checked={chosen.has(contact.userId)}
                onChange={(e) => {
                  const next = new Set(chosen);
                  if (e.currentTarget.checked) next.add(contact.userId);
                  else next.delete(contact.userId);
                  setChosen(next);
                }}
              />
              {contact.displayName || contact.userId}
            </label>
          ))}
        </fieldset>
        <label class="field">
          <span>Other contacts (user ids)</span>
          <input value={others} placeholder="ann, ben" onInput={(e) => setOthers(e.currentTarget.value)} />
        </label>
        {answers.length > 0 && (
          <ul class="binding-answers" role="status">
            {answers.map((a) => (
              <li key={a.userId} class={a.ok ? "ok" : "not-ok"}>
                {a.message}
              </li>
            ))}
          </ul>
        )}
        <div class="modal-actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy || !name.trim()}>
            Create topic
          </button>
        </div>
      </form>
    </Modal>
  );
}

function Contacts({ controller, onClose, onDone }: DialogProps) {
  const store = controller.store!;
  useEffect(() => void controller.contacts.refresh(), []);
  const [userId, setUserId] = useState("");
  const [result, setResult] = useState<string>();
  const dmWith = (peer: string) =>
    [...store.conversations.values()].find((t) => t.info.kind === "direct" && t.info.peerId === peer)?.info.id;
  return (
    <Modal title="Contacts" onClose={onClose}>
      <form
        class="inline-form"
        onSubmit={async (e) => {
          e.preventDefault();
          const answer = await controller.contacts.add(userId);
          if (answer) {
            setResult(answer);
            setUserId("");
          }
        }}
      >
        <label class="field inline">
          <span>Add a contact</span>
          <input value={userId} placeholder="user id" autocapitalize="none" onInput={(e) => setUserId(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={!userId.trim()}>
          Add
        </button>
      </form>
      {result && (
        <p class="form-result" role="status">
          {result}
        </p>
      )}
      {store.contactRequests.length > 0 && (
        <>
          <h3>Added you</h3>
          <ul class="contact-list">
            {store.contactRequests.map((request) => (
              <li key={request.userId} class="contact" data-contact={request.userId}>
                <span class="contact-name">{request.displayName || request.userId}</span>
                <button
                  type="button"
                  class="small primary"
                  onClick={async () => setResult(await controller.contacts.add(request.userId))}
                >
                  Add back
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
      <h3>Your contacts</h3>
      {store.contacts.length === 0 && <p class="empty">No contacts yet.</p>}
      <ul class="contact-list">
        {store.contacts.map((contact) => {
          const existing = dmWith(contact.userId);
          return (
            <li key={contact.userId} class="contact" data-contact={contact.userId}>
              <span class={`presence ${contact.mutual && contact.online ? "on" : "off"}`} aria-hidden="true" />
              <span class="contact-name">
                {contact.displayName || contact.userId}
                <span class="contact-state">
                  {contact.mutual ? (contact.online ? " · online" : " · offline") : " · waiting for them to add you"}
                </span>
              </span>
              {existing && (
                <button type="button" class="small" onClick={() => onDone({ kind: "conversation", id: existing })}>
                  Chat
                </button>
              )}
              <button
                type="button"
                class="link danger"
                aria-label={`Remove ${contact.userId} from contacts`}
                onClick={() => void controller.contacts.remove(contact.userId)}
              >
                Remove
              </button>
            </li>
          );
        })}
      </ul>
      {store.blocked.size > 0 && (
        <>
          <h3>Blocked</h3>
          <ul class="contact-list">
            {[...store.blocked].sort().map((userId) => (
              <li key={userId} class="contact" data-blocked={userId}>
                <span class="contact-name">{userId}</span>
                <button type="button" class="small" onClick={() => void controller.contacts.block(userId, false)}>
                  Unblock
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
    </Modal>
  );
}
