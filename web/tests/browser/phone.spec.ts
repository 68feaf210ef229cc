// At phone width the sidebar and the conversation take turns.

import { expect, Person, test } from "./fixtures";

test("works at phone width", async ({ browser, cluster, people }) => {
  const pat = await Person.register(browser, cluster, "pat", 1, { width: 390, height: 780 });
  const rob = await Person.register(browser, cluster, "rob", 0);
  people.push(pat, rob);

  await pat.createGroup("Runners", ["rob"]);
  await expect(pat.sidebar).toBeHidden();
  await pat.send("5k on Sunday?");

  await pat.page.getByRole("button", { name: "Back to conversations" }).click();
  await expect(pat.sidebar).toBeVisible();
  await expect(pat.page.getByRole("main")).toBeHidden();

  await rob.acceptInvitation("Runners");
  await rob.send("I'm in, 8am");
  // Two unread: "rob joined" and his message.
  await expect(pat.entry("Runners").getByTestId("unread")).toHaveText("2");
  await expect(pat.entry("Runners").getByTestId("preview")).toHaveText("rob: I'm in, 8am");
  await pat.screenshot("phone-sidebar");

  await pat.open("Runners");
  await expect(pat.sidebar).toBeHidden();
  await expect(pat.messageWithText("I'm in, 8am")).toBeVisible();
  // The input box fits the screen.
  const box = await pat.page.getByLabel(/^Message to/).boundingBox();
  expect(box && box.x + box.width).toBeLessThanOrEqual(390);
  await pat.screenshot("phone-conversation");
});
