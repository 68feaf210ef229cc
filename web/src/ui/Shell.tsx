// The logged-in page: the sidebar of conversations, the open conversation
// or topic window, notices and the screen-reader announcer. At phone width
// only one of the two panes shows at a time.

import { useEffect, useState } from "preact/hooks";

import type { Controller } from "../app/controller";
import { pageTitle, unreadTotal, type Place } from "../state/sidebar";
import { ConversationView } from "./ConversationView";
import { Dialogs, type DialogKind } from "./Dialogs";
import { Notices } from "./Notices";
import { pathOf, placeFromPath } from "./route";
import { Sidebar } from "./Sidebar";
import { TopicWindow } from "./TopicWindow";

export function Shell({ controller }: { controller: Controller }) {
  const [place, setPlace] = useState<Place | undefined>(() => placeFromPath(location.pathname));
  const [dialog, setDialog] = useState<DialogKind>();
  const store = controller.store!;

  useEffect(() => {
    const onPop = () => setPlace(placeFromPath(location.pathname));
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);

  // A conversation that disappeared (left the group, removed) closes.
  const gone =
    place &&
    ((place.kind === "conversation" && !store.thread(place.id) && store.conversations.size > 0) ||
      (place.kind === "topic" && !store.topics.has(place.id) && store.topics.size > 0));
  useEffect(() => {
    if (gone) open(undefined, true);
  }, [gone]);

  function open(next: Place | undefined, replace = false) {
    const path = pathOf(next);
    if (path !== location.pathname) {
      if (replace) history.replaceState(null, "", path);
      else history.pushState(null, "", path);
    }
    setPlace(next);
  }

  const title = pageTitle(unreadTotal(store));
  useEffect(() => {
    document.title = title;
  }, [title]);

  const showing = place && !gone ? place : undefined;
  return (
    <div class="shell" data-pane={showing ? "main" : "list"}>
      <Sidebar controller={controller} place={showing} onOpen={(p) => open(p)} onDialog={setDialog} />
      <main class="main" aria-label="Conversation">
        {showing?.kind === "conversation" && (
          <ConversationView
            key={showing.id}
            controller={controller}
            conversationId={showing.id}
            focusSeq={showing.seq}
            onBack={() => open(undefined)}
          />
        )}
        {showing?.kind === "topic" && (
          <TopicWindow key={showing.id} controller={controller} topicId={showing.id} onBack={() => open(undefined)} />
        )}
        {!showing && <Welcome onDialog={setDialog} />}
      </main>
      <Dialogs controller={controller} dialog={dialog} onClose={() => setDialog(undefined)} onOpen={(p) => open(p)} />
      <Notices controller={controller} />
      <div class="visually-hidden" aria-live="polite" aria-atomic="true">
        {controller.announcement}
      </div>
    </div>
  );
}

function Welcome({ onDialog }: { onDialog: (kind: DialogKind) => void }) {
  return (
    <div class="welcome">
      <h2>Pick a conversation</h2>
      <p>New messages in every group, chat and topic arrive here live, with an unread count, without opening them.</p>
      <div class="welcome-actions">
        <button type="button" onClick={() => onDialog("new-chat")}>
          Start a chat
        </button>
        <button type="button" onClick={() => onDialog("new-group")}>
          Create a group
        </button>
        <button type="button" onClick={() => onDialog("new-topic")}>
          Create a topic
        </button>
      </div>
    </div>
  );
}
