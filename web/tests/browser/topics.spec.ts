// One-to-many topics from both sides: the owner's window with a thread per
// contact and one input box; each contact's own dialog for the topic.

import { expect, Person, test } from "./fixtures";

test("a topic with three contacts on both gateways", async ({ browser, cluster, people }) => {
  const olga = await Person.register(browser, cluster, "olga", 0, { width: 1440, height: 900 });
  const pia = await Person.register(browser, cluster, "pia", 0);
  const quinn = await Person.register(browser, cluster, "quinn", 1);
  const ruth = await Person.register(browser, cluster, "ruth", 1);
  people.push(olga, pia, quinn, ruth);

  // Topics bind mutual contacts only: both sides add each other.
  for (const contact of [pia, quinn, ruth]) {
    await olga.addContact(contact.id);
    await contact.addContact("olga");
  }

  // A plain one-to-one chat with pia, to tell apart from the topic dialog.
  const newChat = await olga.dialog("New chat");
  await newChat.getByLabel("User id").fill("pia");
  await newChat.getByLabel("First message").fill("hi pia, this is our plain chat");
  await newChat.getByRole("button", { name: "Send" }).click();
  await expect(olga.heading).toContainText("Pia");

  const create = await olga.dialog("New topic");
  await create.getByLabel("Topic name").fill("Badminton Saturday");
  for (const id of ["pia", "quinn", "ruth"]) await create.getByLabel(id.charAt(0).toUpperCase() + id.slice(1)).check();
  await create.getByRole("button", { name: "Create topic" }).click();
  await expect(olga.heading).toContainText("Badminton Saturday");
  const thread = (id: string) => olga.page.getByRole("listitem", { name: `Thread with ${id}` });
  await expect(olga.page.locator("section.thread-card")).toHaveCount(3);

  // Send once: every contact gets a private copy in the topic's dialog.
  const box = olga.page.getByLabel("Message to the chosen contacts of Badminton Saturday");
  await box.fill("Court 3 at 10:00, who is in?");
  await box.press("Enter");
  for (const id of ["pia", "quinn", "ruth"]) {
    await expect(olga.messageWithText("Court 3 at 10:00, who is in?", thread(id))).toBeVisible();
  }
  const dialogTitle = "Badminton Saturday (from olga)";
  for (const contact of [pia, quinn, ruth]) {
    await expect(contact.entry(dialogTitle).getByTestId("preview")).toHaveText("olga: Court 3 at 10:00, who is in?");
    await expect(contact.entry(dialogTitle)).toContainText("topic from olga");
  }
  // The dialog is its own conversation, apart from the plain chat with olga.
  await expect(pia.page.locator("section[aria-labelledby=section-chats] .entry-title")).toHaveText(["Olga"]);
  await expect(pia.page.locator("section[aria-labelledby=section-topics]").locator(".entry-title")).toHaveText([dialogTitle]);

  await pia.open(dialogTitle);
  await expect(pia.messageWithText("Court 3 at 10:00, who is in?")).toBeVisible();
  await expect(pia.messages).not.toContainText("plain chat");
  await quinn.open(dialogTitle);
  await expect(quinn.messageWithText("Court 3 at 10:00, who is in?")).toBeVisible();

  // Quinn replies: it lands in quinn's thread on olga's page, and nowhere else.
  await quinn.send("count me in");
  await expect(olga.messageWithText("count me in", thread("quinn"))).toBeVisible();
  await expect(thread("pia")).not.toContainText("count me in");
  await expect(thread("ruth")).not.toContainText("count me in");
  for (const other of [pia, ruth]) await expect(other.page.getByText("count me in")).toHaveCount(0);

  // Per contact, the status of the broadcast: ruth has not opened it yet.
  const status = (id: string) => thread(id).locator("[data-status]").first();
  await expect(status("quinn")).toHaveText(/replied/);
  await expect(status("pia")).toHaveText(/read/);
  await expect(status("ruth")).toHaveText(/delivered/);
  await olga.screenshot("topic-window", true);

  // Partial send: not to ruth.
  await thread("ruth").getByLabel("Send to ruth").uncheck();
  await expect(olga.page.getByTestId("recipients")).toHaveText("To 2 of 3: pia and quinn");
  await box.fill("Only pia and quinn: bring shuttles");
  await olga.page.getByRole("button", { name: "Send to 2" }).click();
  await expect(olga.messageWithText("Only pia and quinn: bring shuttles", thread("pia"))).toBeVisible();
  await expect(olga.messageWithText("Only pia and quinn: bring shuttles", thread("quinn"))).toBeVisible();
  await expect(pia.messageWithText("Only pia and quinn: bring shuttles")).toBeVisible();
  await expect(quinn.messageWithText("Only pia and quinn: bring shuttles")).toBeVisible();
  await expect(thread("ruth")).not.toContainText("bring shuttles");
  await expect(ruth.entry(dialogTitle).getByTestId("preview")).toHaveText("olga: Court 3 at 10:00, who is in?");

  // Copy and resend: click the first message in pia's thread, edit, send to ruth only.
  await thread("pia").getByRole("button", { name: /^You: Court 3 at 10:00, who is in\?/ }).click();
  await expect(box).toHaveValue("Court 3 at 10:00, who is in?");
  await expect(olga.page.getByText("Copied from pia’s thread")).toBeVisible();
  await olga.page.getByRole("button", { name: "None", exact: true }).click();
  await thread("ruth").getByLabel("Send to ruth").check();
  await box.fill("Court 3 at 10:00, who is in? Ruth, are you?");
  await olga.page.getByRole("button", { name: "Send to 1" }).click();
  await expect(olga.messageWithText("Court 3 at 10:00, who is in? Ruth, are you?", thread("ruth"))).toBeVisible();
  await expect(thread("pia")).not.toContainText("Ruth, are you?");
  await ruth.open(dialogTitle);
  await expect(ruth.messageWithText("Court 3 at 10:00, who is in? Ruth, are you?")).toBeVisible();
  await expect(ruth.messageWithText("Court 3 at 10:00, who is in?")).toBeVisible();
  await expect(ruth.messages).not.toContainText("bring shuttles");
  await expect(status("ruth")).toHaveText(/read/);

  // Adding a contact who is already there says so, in place.
  const add = olga.page.getByLabel("Add contacts");
  await add.fill("pia");
  await olga.page.getByRole("button", { name: "Add", exact: true }).click();
  await expect(olga.page.locator(".binding-answers")).toContainText("pia is already in this topic");
  await expect(olga.page.locator("section.thread-card")).toHaveCount(3);
  await olga.screenshot("topic-window-after-resend");

  // Removing one: forwarding stops, and ruth's dialog closes for writing.
  await olga.page.getByRole("button", { name: "Remove ruth from the topic" }).click();
  await expect(thread("ruth").locator(".tag.state")).toHaveText("removed");
  await expect(ruth.page.locator("main .composer.closed")).toContainText("closed");
  await pia.screenshot("topic-contact-dialog");

  // A contact mutes the topic: the owner sees it in place.
  await pia.page.getByRole("button", { name: "Mute", exact: true }).click();
  await expect(pia.page.getByRole("button", { name: "Unmute" })).toBeVisible();
  await expect(thread("pia").locator(".tag.state")).toHaveText("muted");

  // Renaming shows on the contacts' side.
  await olga.page.getByText("Topic settings").click();
  await olga.page.getByLabel("Name", { exact: true }).fill("Badminton Sunday");
  await olga.page.getByRole("button", { name: "Rename" }).click();
  await expect(olga.heading).toContainText("Badminton Sunday");
  await expect(quinn.entry("Badminton Sunday (from olga)")).toBeVisible();
});
