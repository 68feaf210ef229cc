// Web Push from the page: the reader turns pushes on in their profile, closes
// the page, and a message to them is pushed, encrypted, to their browser's
// push service; the service worker shows it.
//
// Headless Chromium has no push service it can reach here, so one piece is
// stood in for: PushManager.subscribe answers with a subscription on the
// test's own push service, whose keys the test holds, as a browser's push
// service would hand out. Everything else is real: the page registers it
// with the server, the routers encrypt and sign (VAPID) and POST it, the
// test decrypts it (RFC 8291 with node:crypto, code of its own) and checks
// the signature, then hands the plaintext to the page's real service worker
// (CDP ServiceWorker.deliverPushMessage, what the browser does with a
// decrypted push), which shows the notification.

import { createDecipheriv, createECDH, createPublicKey, hkdfSync, randomBytes, verify, type ECDH } from "node:crypto";
import http from "node:http";

import { expect, Person, test } from "./fixtures";

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** RFC 8291 from the browser's side: the push's plaintext. */
function decrypt(body: Buffer, keys: ECDH, auth: Buffer): string {
  const salt = body.subarray(0, 16);
  const idLength = body[20]!;
  const serverKey = body.subarray(21, 21 + idLength);
  const sealed = body.subarray(21 + idLength);
  const shared = keys.computeSecret(serverKey);
  const info = Buffer.concat([Buffer.from("WebPush: info\0"), keys.getPublicKey(), serverKey]);
  const ikm = Buffer.from(hkdfSync("sha256", shared, auth, info, 32));
  const cek = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: aes128gcm\0"), 16));
  const nonce = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: nonce\0"), 12));
  const decipher = createDecipheriv("aes-128-gcm", cek, nonce);
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  const plain = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]);
  let end = plain.length;
  while (end > 0 && plain[end - 1] === 0) end--;
  expect(plain[end - 1], "the last record's delimiter").toBe(2);
  return plain.subarray(0, end - 1).toString("utf8");
}

/** The VAPID header (RFC 8292): an ES256 JWT for this push service, under the key `k` names. */
function checkVapid(authorization: string, audience: string): void {
  const match = /^vapid t=([^,]+), k=(.+)$/.exec(authorization);
  expect(match, authorization).not.toBeNull();
  const [header, claims, signature] = match![1]!.split(".");
  const point = Buffer.from(match![2]!, "base64url");
  const key = createPublicKey({
    key: { kty: "EC", crv: "P-256", x: point.subarray(1, 33).toString("base64url"), y: point.subarray(33).toString("base64url") },
    format: "jwk",
  });
  const signed = verify("sha256", Buffer.from(`${header}.${claims}`), { key, dsaEncoding: "ieee-p1363" }, Buffer.from(signature!, "base64url"));
  expect(signed, "the VAPID signature").toBe(true);
  const body = JSON.parse(Buffer.from(claims!, "base64url").toString("utf8"));
  expect(body.aud).toBe(audience);
  expect(body.exp * 1000).toBeGreaterThan(Date.now());
}

test("a reader whose page is closed is pushed the message, and the service worker shows it", async ({ browser, cluster, people }) => {
  const received: Received[] = [];
  const service = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      received.push({ path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(201).end();
    });
  });
  await new Promise<void>((resolve) => service.listen(cluster.pushPort, "127.0.0.1", resolve));
  try {
    const browserKeys = createECDH("prime256v1");
    browserKeys.generateKeys();
    const auth = randomBytes(16);
    const subscription = {
      endpoint: `http://127.0.0.1:${cluster.pushPort}/push/rae`,
      p256dh: browserKeys.getPublicKey().toString("base64url"),
      auth: auth.toString("base64url"),
    };

    const rae = await Person.register(browser, cluster, "rae", 0);
    const nox = await Person.register(browser, cluster, "nox", 1);
    people.push(rae, nox);
    await rae.addContact("nox");
    await nox.addContact("rae");
    const origin = new URL(cluster.url(0)).origin;
    await rae.context.grantPermissions(["notifications"], { origin });
    await rae.page.evaluate((fake) => {
      let subscribed = false;
      const made = {
        endpoint: fake.endpoint,
        expirationTime: null,
        toJSON: () => ({ endpoint: fake.endpoint, keys: { p256dh: fake.p256dh, auth: fake.auth } }),
        unsubscribe: async () => true,
      };
      PushManager.prototype.subscribe = async function () {
        subscribed = true;
        return made as unknown as PushSubscription;
      };
      PushManager.prototype.getSubscription = async function () {
        return subscribed ? (made as unknown as PushSubscription) : null;
      };
    }, subscription);

    // In her profile: pushes on, with the text.
    await rae.page.getByRole("button", { name: "Your profile" }).click();
    const profile = rae.page.getByRole("dialog", { name: "Your profile" });
    // Each box changes once the server took the change.
    await profile.getByLabel("Push notifications to this browser").click();
    await expect(profile.getByRole("status")).toHaveText("This browser is told of new messages while you are away.");
    await expect(profile.getByLabel("Push notifications to this browser")).toBeChecked();
    await profile.getByLabel("Show message text in them").click();
    await expect(profile.getByLabel("Show message text in them")).toBeChecked();
    await profile.getByRole("button", { name: "Cancel" }).click();

    // She closes the page; nox sees her go offline, then writes to her.
    await rae.page.close();
    const contacts = await nox.dialog("Contacts");
    await expect(contacts.locator("li", { hasText: "rae" })).toContainText("offline");
    await contacts.getByRole("button", { name: "Close" }).click();
    const chat = await nox.dialog("New chat");
    await chat.getByLabel("User id").fill("rae");
    await chat.getByLabel("First message").fill("dinner at eight?");
    await chat.getByRole("button", { name: "Send" }).click();

    await expect.poll(() => received.length, { message: "a push to rae's push service" }).toBeGreaterThan(0);
    const push = received[0]!;
    expect(push.path).toBe("/push/rae");
    expect(push.headers["content-encoding"]).toBe("aes128gcm");
    checkVapid(String(push.headers.authorization), `http://127.0.0.1:${cluster.pushPort}`);
    const plaintext = decrypt(push.body, browserKeys, auth);
    const notice = JSON.parse(plaintext);
    expect(notice).toMatchObject({ sender: "nox", reason: "direct", text: "dinner at eight?" });

    // The browser hands the push to the page's service worker, which shows it.
    const page = await rae.context.newPage();
    await page.goto(cluster.url(0));
    const cdp = await rae.context.newCDPSession(page);
    const registration = new Promise<string>((resolve) => {
      cdp.on("ServiceWorker.workerRegistrationUpdated", ({ registrations }) => {
        const ours = registrations.find((r) => !r.isDeleted && r.scopeURL.startsWith(origin));
        if (ours) resolve(ours.registrationId);
      });
    });
    await cdp.send("ServiceWorker.enable");
    await cdp.send("ServiceWorker.deliverPushMessage", { origin, registrationId: await registration, data: plaintext });
    await expect
      .poll(() =>
        page.evaluate(async () => {
          const registration = await navigator.serviceWorker.getRegistration("/");
          const shown = (await registration?.getNotifications()) ?? [];
          return shown.map((n) => ({ title: n.title, body: n.body, tag: n.tag }));
        }),
      )
      .toEqual([{ title: "nox", body: "dinner at eight?", tag: notice.conversation_id }]);
  } finally {
    await new Promise((resolve) => service.close(resolve));
  }
});
