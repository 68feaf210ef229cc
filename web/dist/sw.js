// Switchboard's service worker: shows what the server pushes (Web Push)
// while no page of the reader's is open, and brings a page forward when the
// notification is clicked. The push is already decrypted by the browser; it
// carries who wrote, where, and the text only if the reader allowed
// previews on this browser.

self.addEventListener("push", (event) => {
  let notice = {};
  try {
    notice = event.data ? event.data.json() : {};
  } catch {
    // An unreadable push still says something arrived.
  }
  const who = notice.sender || "Someone";
  const title =
    notice.reason === "mention" ? `${who} mentioned you` : notice.topic_name ? `${who} in ${notice.topic_name}` : who;
  event.waitUntil(
    self.registration.showNotification(title, {
      body: notice.text || "New message",
      // One notification per conversation: a newer one replaces it.
      tag: notice.conversation_id || "switchboard",
      data: { conversationId: notice.conversation_id },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    (async () => {
      const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = pages.find((page) => new URL(page.url).origin === self.location.origin);
      if (open) return open.focus();
      return self.clients.openWindow("/");
    })(),
  );
});
