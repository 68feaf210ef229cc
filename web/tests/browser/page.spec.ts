// How the gateway serves the page itself: compressed, cached by content,
// under a strict Content-Security-Policy (every test also checks that the
// page did nothing the policy refused: see fixtures.ts).

import { expect, Person, test } from "./fixtures";

test("the page arrives compressed, with its policy, and a reload costs a revalidation", async ({ browser, cluster, people }) => {
  const responses: { url: string; status: number; headers: Record<string, string> }[] = [];
  const xia = await Person.openAt(browser, cluster.url(0), "xia");
  people.push(xia);
  xia.page.on("response", async (response) => {
    responses.push({ url: response.url(), status: response.status(), headers: await response.allHeaders() });
  });
  await xia.page.reload();
  await xia.createAccount();
  await expect(xia.connection).toHaveText("Connected");

  const page = responses.find((r) => new URL(r.url).pathname === "/");
  expect(page?.headers["content-security-policy"]).toContain("script-src 'self'");
  expect(page?.headers["content-encoding"]).toBe("br");
  expect(page?.headers["etag"]).toMatch(/^"[0-9a-f]+-br"$/);
  const bundle = responses.find((r) => /\/assets\/.*\.js$/.test(r.url));
  expect(bundle?.headers["cache-control"]).toContain("immutable");

  // The browser asks again with the tag it holds: the gateway answers 304.
  const again = await xia.page.request.get("/", {
    headers: { "accept-encoding": "br", "if-none-match": page!.headers["etag"]! },
  });
  expect(again.status()).toBe(304);
});
