// The page hosted on another site than the gateway (an app's own origin, a
// CDN): it names the gateway in a <meta> tag and calls it across origins.
// The gateways allow exactly one such origin (cluster.appOrigin()): a page
// there works end to end (account, stream, live delivery); the same page on
// an origin the gateways do not allow cannot reach them at all.

import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";

import { freePort, REPO_DIR } from "../cluster";
import { expect, Person, test } from "./fixtures";

const DIST = path.join(REPO_DIR, "web/dist");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

/** A plain static host of web/dist on `port`, its page pointed at `gateway`. */
async function hostPage(port: number, gateway: string): Promise<http.Server> {
  const index = readFileSync(path.join(DIST, "index.html"), "utf8").replace(
    "<head>",
    `<head><meta name="switchboard-server" content="${gateway}">`,
  );
  const server = http.createServer((request, response) => {
    const file = path.normalize(new URL(request.url ?? "/", "http://x").pathname);
    if (file === "/" || !path.extname(file)) {
      response.writeHead(200, { "content-type": TYPES[".html"] }).end(index);
      return;
    }
    try {
      const body = readFileSync(path.join(DIST, file));
      response.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return server;
}

test("a page on an allowed origin chats through the gateway; another origin cannot call it", async ({ browser, cluster, people }) => {
  const allowed = await hostPage(cluster.appPort, cluster.url(0));
  const strangerPort = await freePort();
  const stranger = await hostPage(strangerPort, cluster.url(0));
  try {
    const uma = await Person.openAt(browser, cluster.appOrigin(), "uma");
    people.push(uma);
    await uma.createAccount();
    await expect(uma.connection).toHaveText("Connected");
    const vic = await Person.register(browser, cluster, "vic", 1);
    people.push(vic);

    const chat = await uma.dialog("New chat");
    await chat.getByLabel("User id").fill("vic");
    await chat.getByLabel("First message").fill("hello from the app's own site");
    await chat.getByRole("button", { name: "Send" }).click();
    await expect(uma.heading).toContainText("Vic");

    await vic.open("Uma");
    await expect(vic.messageWithText("hello from the app's own site")).toBeVisible();
    await vic.send("and back, live across origins");
    await expect(uma.messageWithText("and back, live across origins")).toBeVisible();

    // The same page where the gateways do not allow it: the browser refuses
    // every call, so nothing is created.
    const wes = await Person.openAt(browser, `http://127.0.0.1:${strangerPort}`, "wes");
    people.push(wes);
    await wes.createAccount();
    await expect(wes.page.getByRole("alert")).toContainText(/cannot reach the server/i);
    const missing = await vic.dialog("New chat");
    await missing.getByLabel("User id").fill("wes");
    await missing.getByLabel("First message").fill("are you there?");
    await missing.getByRole("button", { name: "Send" }).click();
    await expect(vic.page.locator(".notices .notice").filter({ hasText: "wes" })).toBeVisible();
  } finally {
    allowed.close();
    stranger.close();
  }
});
