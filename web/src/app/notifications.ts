// Browser notifications, once the reader allowed them (asked for from the
// sidebar): shown only while the tab is hidden; a visible page says it itself.

function supported(): boolean {
  return typeof Notification !== "undefined";
}

/** The reader has not answered yet: the sidebar offers to turn them on. */
export function mayAskForNotifications(): boolean {
  return supported() && Notification.permission === "default";
}

/** Asks the browser; whether they are allowed now. */
export async function askForNotifications(): Promise<boolean> {
  if (!supported()) return false;
  return (await Notification.requestPermission()) === "granted";
}

/** One notification per conversation at a time (`tag`); clicking it brings the tab forward. */
export function showNotification(title: string, body: string, tag: string): void {
  if (!supported() || Notification.permission !== "granted") return;
  try {
    const shown = new Notification(title, { body, tag });
    shown.onclick = () => {
      window.focus();
      shown.close();
    };
  } catch {
    // Some browsers allow notifications only from a service worker: the page still shows it.
  }
}
