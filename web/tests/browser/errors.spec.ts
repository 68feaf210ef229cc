// The server's refusals reach the person in words.

import { expect, Person, test } from "./fixtures";

test("a wrong password says so", async ({ browser, cluster, people }) => {
  const kim = await Person.register(browser, cluster, "kim", 1);
  people.push(kim);
  await kim.page.getByRole("button", { name: "Log out" }).click();
  await expect(kim.page.getByRole("status")).toHaveText("You are logged out.");

  await kim.page.getByLabel("User id").fill("kim");
  await kim.page.getByLabel("Password").fill("not kim's password");
  await kim.page.getByRole("button", { name: "Log in" }).last().click();
  await expect(kim.page.getByRole("alert")).toHaveText("Wrong user id or password.");
  await kim.screenshot("login-error");

  // An id that is taken, when registering.
  await kim.page.getByRole("tab", { name: "Create account" }).click();
  await kim.page.getByLabel("User id").fill("kim");
  await kim.page.getByLabel("Password").fill("another password");
  await kim.page.getByRole("form", { name: "Create account" }).getByRole("button", { name: "Create account" }).click();
  await expect(kim.page.getByRole("alert")).toContainText(/taken|exists/i);

  // And the right password still works.
  await kim.page.getByRole("tab", { name: "Log in" }).click();
  await kim.page.getByLabel("User id").fill("kim");
  await kim.page.getByLabel("Password").fill("kim password");
  await kim.page.getByRole("button", { name: "Log in" }).last().click();
  await expect(kim.connection).toHaveText("Connected");
});

test("joining an invite-only group uninvited is refused in words", async ({ browser, cluster, people }) => {
  const lea = await Person.register(browser, cluster, "lea", 0);
  const max = await Person.register(browser, cluster, "max", 1);
  people.push(lea, max);
  await lea.createGroup("Board", [], "invite-only");
  const board = await lea.openGroupId();

  const join = await max.dialog("Join group");
  await join.getByLabel("Group id").fill(board);
  await join.getByRole("button", { name: "Join" }).click();
  const notice = max.page.locator(".notices .notice");
  await expect(notice).toHaveCount(1);
  await expect(notice).toContainText(/^Could not join the group: .*invit/i);
  await expect(max.entry("Board")).toHaveCount(0);

  // Sending to a user who does not exist.
  await join.getByRole("button", { name: "Cancel" }).click();
  const chat = await max.dialog("New chat");
  await chat.getByLabel("User id").fill("nobody-here");
  await chat.getByLabel("First message").fill("hello?");
  await chat.getByRole("button", { name: "Send" }).click();
  await expect(notice.filter({ hasText: "nobody-here" })).toBeVisible();
});
