// Web Push: with the reader's permission, the page's service worker
// (public/sw.js) subscribes with the browser's push service and the
// subscription is registered with Switchboard (SetPushSubscription), so new
// messages reach the reader while no page of theirs is open. The server
// ends a subscription with the session that made it; logging out also
// unsubscribes here.

import { Code, ConnectError } from "@connectrpc/connect";

import type { Clients } from "../api/clients";

/** Whether this browser can take pushes at all. */
export function pushSupported(): boolean {
  return (
    typeof navigator !== "undefined" &&
    "serviceWorker" in navigator &&
    typeof PushManager !== "undefined" &&
    typeof Notification !== "undefined"
  );
}

/** The deployment's VAPID key, or undefined where Web Push is not set up. */
export async function pushKey(clients: Clients): Promise<string | undefined> {
  try {
    return (await clients.accounts.getPushKey({})).vapidPublicKey;
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.FailedPrecondition) return undefined;
    throw err;
  }
}

/** This browser's subscription, if it has one. */
export async function currentSubscription(): Promise<PushSubscription | null> {
  const registration = await navigator.serviceWorker.getRegistration("/");
  return registration ? registration.pushManager.getSubscription() : null;
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  const bytes = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/**
 * Turns pushes on for this browser (asking for permission first), with the
 * message text in them or not; whether they are on.
 */
export async function enablePush(clients: Clients, key: string, previews: boolean): Promise<boolean> {
  if ((await Notification.requestPermission()) !== "granted") return false;
  await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  const registration = await navigator.serviceWorker.ready;
  const subscription =
    (await registration.pushManager.getSubscription()) ??
    (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: fromBase64Url(key) }));
  const keys = subscription.toJSON().keys ?? {};
  await clients.accounts.setPushSubscription({
    endpoint: subscription.endpoint,
    p256dh: keys.p256dh ?? "",
    auth: keys.auth ?? "",
    previews,
    remove: false,
  });
  return true;
}

/** Turns pushes off for this browser (at the server too, while logged in). */
export async function disablePush(clients: Clients | undefined): Promise<void> {
  if (!pushSupported()) return;
  const subscription = await currentSubscription();
  if (!subscription) return;
  if (clients) {
    await clients.accounts.setPushSubscription({ endpoint: subscription.endpoint, remove: true }).catch(() => undefined);
  }
  await subscription.unsubscribe();
}
