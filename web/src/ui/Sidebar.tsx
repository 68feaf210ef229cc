// Groups, chats and topics, each with its unread count and latest message.
// Updated live from the one stream: nothing needs to be opened to be seen.

import { useState } from "preact/hooks";

import type { Controller } from "../app/controller";
import { askForNotifications, mayAskForNotifications } from "../app/notifications";
import { placeKey, preview, sidebarEntries, type Place, type SidebarEntry } from "../state/sidebar";
import { ConnectionStatus } from "./ConnectionStatus";
import type { DialogKind } from "./Dialogs";
import { shortTime } from "./format";

interface Props {
  controller: Controller;
  place?: Place;
  onOpen: (place: Place) => void;
  onDialog: (kind: DialogKind) => void;
}

const SECTIONS: { id: SidebarEntry["section"]; title: string; empty: string }[] = [
  { id: "requests", title: "Message requests", empty: "" },
  { id: "groups", title: "Groups", empty: "No groups yet." },
  { id: "chats", title: "Chats", empty: "No chats yet." },
  { id: "topics", title: "Topics", empty: "No topics yet." },
];

export function Sidebar({ controller, place, onOpen, onDialog }: Props) {
  const store = controller.store!;
  const session = controller.session!;
  const entries = sidebarEntries(store);
  const current = place ? placeKey(place) : "";
  const invitations = [...store.invitations.values()];
  const [mayAsk, setMayAsk] = useState(mayAskForNotifications);

  return (
    <nav class="sidebar" aria-label="Conversations">
      <header class="sidebar-header">
        <div class="me">
          <span class="brand-mark small" aria-hidden="true" />
          <div class="me-text">
            <button type="button" class="link me-name" aria-label="Your profile" onClick={() => onDialog("profile")}>
              {session.displayName || session.userId}
            </button>
            <span class="me-id">@{session.userId}</span>
          </div>
          <button type="button" class="link" onClick={() => void controller.logout()}>
            Log out
          </button>
        </div>
        <ConnectionStatus controller={controller} />
        {mayAsk && (
          <button
            type="button"
            class="link notify"
            onClick={() => void askForNotifications().finally(() => setMayAsk(mayAskForNotifications()))}
          >
            Turn on notifications
          </button>
        )}
      </header>
      <div class="sidebar-actions" role="group" aria-label="Start something">
        <button type="button" onClick={() => onDialog("new-chat")}>New chat</button>
        <button type="button" onClick={() => onDialog("new-group")}>New group</button>
        <button type="button" onClick={() => onDialog("join-group")}>Join group</button>
        <button type="button" onClick={() => onDialog("new-topic")}>New topic</button>
        <button type="button" onClick={() => onDialog("search")}>Search</button>
        <button type="button" onClick={() => onDialog("contacts")}>
          Contacts{store.contactRequests.length > 0 && <span class="badge">{store.contactRequests.length}</span>}
        </button>
      </div>
      <div class="sidebar-lists">
        {SECTIONS.map((section) => {
          const items = entries.filter((e) => e.section === section.id);
          const unread = items.reduce((sum, e) => sum + e.unread, 0);
          if (section.id === "requests" && items.length === 0) return null;
          return (
            <section key={section.id} class="sidebar-section" aria-labelledby={`section-${section.id}`}>
              <h2 id={`section-${section.id}`} class="section-title">
                {section.title}
                {unread > 0 && <span class="visually-hidden">, {unread} unread</span>}
              </h2>
              {section.id === "groups" && invitations.length > 0 && (
                <ul class="invitations">
                  {invitations.map((group) => (
                    <li key={group.id} class="invitation">
                      <span>
                        Invitation to <strong>{group.name}</strong>
                      </span>
                      <button
                        type="button"
                        class="small primary"
                        onClick={async () => {
                          const id = await controller.groups.join(group.id);
                          if (id) onOpen({ kind: "conversation", id });
                        }}
                      >
                        Join
                      </button>
                    </li>
                  ))}
                </ul>
              )}
              {items.length === 0 && !(section.id === "groups" && invitations.length) && (
                <p class="empty">{section.empty}</p>
              )}
              <ul class="entries">
                {items.map((entry) => (
                  <li key={entry.key}>
                    <EntryButton
                      entry={entry}
                      me={store.me}
                      online={entry.place.kind === "conversation" ? peerOnline(controller, entry.place.id) : undefined}
                      current={entry.key === current}
                      onOpen={() => onOpen(entry.place)}
                    />
                  </li>
                ))}
              </ul>
            </section>
          );
        })}
      </div>
    </nav>
  );
}

function peerOnline(controller: Controller, conversationId: string): boolean | undefined {
  const store = controller.store!;
  const info = store.thread(conversationId)?.info;
  if (!info || info.kind !== "direct" || !info.peerId) return undefined;
  return store.presence.get(info.peerId);
}

function EntryButton({
  entry,
  me,
  online,
  current,
  onOpen,
}: {
  entry: SidebarEntry;
  me: string;
  online?: boolean;
  current: boolean;
  onOpen: () => void;
}) {
  const text = preview(entry.lastMessage, me);
  return (
    <button
      type="button"
      class={`entry${current ? " current" : ""}${entry.unread ? " has-unread" : ""}`}
      aria-current={current ? "page" : undefined}
      data-place={entry.key}
      onClick={onOpen}
    >
      <span class={`avatar kind-${entry.section}`} aria-hidden="true">
        {entry.title.slice(0, 1).toUpperCase()}
        {online !== undefined && <span class={`presence ${online ? "on" : "off"}`} />}
      </span>
      <span class="entry-body">
        <span class="entry-top">
          <span class="entry-title">{entry.title}</span>
          <span class="entry-time">{shortTime(entry.lastMessage?.sentAtMs ?? 0)}</span>
        </span>
        <span class="entry-kind">
          {entry.label}
          {entry.muted ? " · muted" : ""}
          {entry.closed ? " · closed" : ""}
          {online !== undefined ? (online ? " · online" : " · offline") : ""}
        </span>
        <span class="entry-bottom">
          <span class="entry-preview" data-testid="preview">{text}</span>
          {entry.unread > 0 && (
            <span class="unread" data-testid="unread" aria-label={`${entry.unread} unread`}>
              {entry.unread > 99 ? "99+" : entry.unread}
            </span>
          )}
        </span>
      </span>
    </button>
  );
}
