// One stream for everything: a message to any group shows up at once in the
// sidebar (unread badge and preview) of a member who has another group open.

import { expect, Person, test } from "./fixtures";

test("a message to group 2 appears in A's sidebar while A has group 1 open", async ({ browser, cluster, people }) => {
  // Three users, each in a browser context of their own, on both gateways.
  const ann = await Person.register(browser, cluster, "ann", 0);
  const ben = await Person.register(browser, cluster, "ben", 1);
  const cyd = await Person.register(browser, cluster, "cyd", 0);
  people.push(ann, ben, cyd);

  // Three groups, everyone in each: created with invitations, joined from the
  // sidebar, and one joined by its id.
  await ann.createGroup("Climbing", ["ben", "cyd"]);
  await ben.createGroup("Book club", ["ann", "cyd"]);
  await cyd.createGroup("Neighbours", []);
  const neighbours = await cyd.openGroupId();
  await ann.acceptInvitation("Book club");
  await ben.acceptInvitation("Climbing");
  await cyd.acceptInvitation("Climbing");
  await cyd.acceptInvitation("Book club");
  for (const person of [ann, ben]) {
    const dialog = await person.dialog("Join group");
    await dialog.getByLabel("Group id").fill(neighbours);
    await dialog.getByRole("button", { name: "Join" }).click();
    await expect(person.heading).toContainText("Neighbours");
  }

  // Ann reads Climbing, Cyd reads Neighbours; neither opens Book club.
  await cyd.open("Neighbours");
  await ann.open("Climbing");
  await ann.send("anyone up for the wall tonight?");

  await ben.open("Book club");
  await ben.send("Chapter 4 for Thursday, please");

  // Ann's page: Book club has an unread badge and the preview, live, while
  // Climbing stays open.
  const bookClub = ann.entry("Book club");
  await expect(bookClub.getByTestId("unread")).toHaveText("1");
  await expect(bookClub.getByTestId("preview")).toHaveText("ben: Chapter 4 for Thursday, please");
  await expect(ann.heading).toContainText("Climbing");
  await expect(ann.entry("Climbing").getByTestId("unread")).toHaveCount(0);
  // The same message reached Cyd's page too, and the third group stayed quiet.
  await expect(cyd.entry("Book club").getByTestId("preview")).toHaveText("ben: Chapter 4 for Thursday, please");
  await expect(cyd.entry("Book club").getByTestId("unread")).toHaveText("1");

  // A second message counts up.
  await ben.send("and bring snacks");
  await expect(bookClub.getByTestId("unread")).toHaveText("2");
  await expect(bookClub.getByTestId("preview")).toHaveText("ben: and bring snacks");
  await ann.screenshot("sidebar-unread", true);

  // A message to the open group shows in place and is read at once.
  await ben.open("Climbing");
  await ben.send("me! 7pm");
  await expect(ann.messageWithText("me! 7pm")).toBeVisible();
  await expect(ann.entry("Climbing").getByTestId("unread")).toHaveCount(0);

  // Opening Book club shows its history and marks it read; Ben sees the receipt.
  await ben.open("Book club");
  await ann.open("Book club");
  await expect(ann.messageWithText("Chapter 4 for Thursday, please")).toBeVisible();
  await expect(ann.messageWithText("and bring snacks")).toBeVisible();
  await expect(bookClub.getByTestId("unread")).toHaveCount(0);
  await expect(ben.page.getByTestId("read-receipt")).toHaveText("Read by ann");

  // Members and who is online.
  await ann.page.getByRole("button", { name: "Members" }).click();
  const members = ann.page.getByRole("complementary", { name: "Members" });
  await expect(members.locator("li.member")).toHaveCount(3);
  await expect(members).toContainText("3 members, 3 online");

  // Leaving: Cyd leaves Book club; it leaves her sidebar, and the others see it.
  await cyd.open("Book club");
  await cyd.page.getByRole("button", { name: "Leave group" }).click();
  await expect(cyd.entry("Book club")).toHaveCount(0);
  await expect(ann.page.locator("main li.message.system", { hasText: "cyd" }).last()).toContainText("left");
  await expect(members.locator("li.member")).toHaveCount(2);
});

test("scroll-back pages older history; the session survives a reload", async ({ browser, cluster, people }) => {
  const eve = await Person.register(browser, cluster, "eve", 1);
  const fay = await Person.register(browser, cluster, "fay", 0);
  people.push(eve, fay);
  await eve.createGroup("Long thread", ["fay"]);

  // A reload keeps the login (and the open conversation, by its address).
  await fay.page.reload();
  await expect(fay.connection).toHaveText("Connected");
  await fay.acceptInvitation("Long thread");
  await fay.page.reload();
  await expect(fay.connection).toHaveText("Connected");
  await expect(fay.heading).toContainText("Long thread");
  // Fay turns to another conversation while Eve writes.
  await fay.createGroup("Notes", []);

  // 55 messages: more than one page of history (40).
  const box = eve.page.getByLabel(/^Message to/);
  for (let i = 1; i <= 55; i++) {
    await box.fill(`line ${i}`);
    await box.press("Enter");
  }
  await expect(eve.messageWithText("line 55")).toBeVisible();
  await expect(eve.page.locator("main li.message.pending")).toHaveCount(0);
  await expect(fay.entry("Long thread").getByTestId("unread")).toHaveText("55");

  // After a reload the counts come from the server; the history is paged in.
  await fay.page.goto("/");
  await expect(fay.entry("Long thread").getByTestId("unread")).toHaveText("55");
  await fay.open("Long thread");
  const lines = fay.messages.locator("li.message .text", { hasText: /^line \d+$/ });
  await expect(fay.messageWithText("line 55")).toBeVisible();
  await expect(lines).toHaveCount(40);
  // Scrolling to the top loads the page before, each message once.
  await fay.page.locator("main .messages").first().evaluate((el) => el.scrollTo(0, 0));
  await expect(fay.messageWithText("line 1")).toBeVisible();
  await expect(lines).toHaveCount(55);
});

test("a group's history setting decides what new members read", async ({ browser, cluster, people }) => {
  const gil = await Person.register(browser, cluster, "gil", 0);
  const hana = await Person.register(browser, cluster, "hana", 1);
  people.push(gil, hana);

  // The dialog picks by policy until told otherwise: an open group shows its
  // past to newcomers, unless its creator says only from their joining.
  const dialog = await gil.dialog("New group");
  await expect(dialog.getByLabel("Everything said before they joined")).toBeChecked();
  await dialog.getByLabel("Only invited users").check();
  await expect(dialog.getByLabel("Only messages from when they join")).toBeChecked();
  await dialog.getByRole("button", { name: "Cancel" }).click();

  await gil.createGroup("Private past", [], "open", "from-join");
  await gil.send("said before hana came");
  const privateId = await gil.openGroupId();
  await gil.createGroup("Open past", [], "open");
  await gil.send("also before hana came");
  const openId = await gil.openGroupId();

  for (const [id, name] of [
    [privateId, "Private past"],
    [openId, "Open past"],
  ]) {
    const join = await hana.dialog("Join group");
    await join.getByLabel("Group id").fill(id);
    await join.getByRole("button", { name: "Join" }).click();
    await expect(hana.heading).toContainText(name);
  }
  await gil.open("Private past");
  await gil.send("hello hana");
  await hana.open("Private past");
  await expect(hana.messageWithText("hello hana")).toBeVisible();
  await expect(hana.messageWithText("said before hana came")).toHaveCount(0);
  await hana.page.getByRole("button", { name: "Members" }).click();
  await expect(hana.page.getByRole("complementary", { name: "Members" })).toContainText(
    "new members read from their joining",
  );
  await hana.open("Open past");
  await expect(hana.messageWithText("also before hana came")).toBeVisible();
});

test("an operator's deletions reach the page: erased messages, a group gone", async ({ browser, cluster, people }) => {
  const xena = await Person.register(browser, cluster, "xena", 0);
  const yuri = await Person.register(browser, cluster, "yuri", 1);
  people.push(xena, yuri);
  await xena.createGroup("Doomed", []);
  const doomedId = await xena.openGroupId();
  await xena.createGroup("Survivor", []);
  const survivorId = await xena.openGroupId();
  for (const [id, name] of [
    [doomedId, "Doomed"],
    [survivorId, "Survivor"],
  ]) {
    const join = await yuri.dialog("Join group");
    await join.getByLabel("Group id").fill(id);
    await join.getByRole("button", { name: "Join" }).click();
    await expect(yuri.heading).toContainText(name);
  }
  await yuri.send("yuri was here");
  await xena.open("Survivor");
  await expect(xena.messageWithText("yuri was here")).toBeVisible();

  // Yuri's account is deleted: his text is gone from the server, and xena's
  // page, loaded again, shows a tombstone in its place.
  cluster.admin("delete-user", "yuri", "--yes");
  await xena.page.reload();
  await xena.open("Survivor");
  await expect(xena.page.locator("main .text.deleted", { hasText: "message deleted" })).toBeVisible();
  await expect(xena.messageWithText("yuri was here")).toHaveCount(0);

  // A group deleted while xena's page is open leaves her sidebar at once.
  await expect(xena.entry("Doomed")).toBeVisible();
  const [deleted] = cluster.admin("delete-group", doomedId, "--yes") as { members_removed: number }[];
  expect(deleted!.members_removed).toBe(1);
  await expect(xena.entry("Doomed")).toHaveCount(0);
  await expect(xena.entry("Survivor")).toBeVisible();
});

test("a message deleted for everyone becomes a tombstone on every page, live", async ({ browser, cluster, people }) => {
  const zoe = await Person.register(browser, cluster, "zoe", 0);
  const abe = await Person.register(browser, cluster, "abe", 1);
  people.push(zoe, abe);
  await zoe.createGroup("Typos", ["abe"]);
  await abe.acceptInvitation("Typos");
  await zoe.send("meet at 7pm at the wrong place");
  await zoe.send("see you there");
  await expect(abe.messageWithText("meet at 7pm at the wrong place")).toBeVisible();

  // Only her own messages offer Delete; she confirms, and both pages show
  // the tombstone without reloading.
  await expect(abe.page.getByRole("button", { name: /^Delete / })).toHaveCount(0);
  zoe.page.once("dialog", (dialog) => void dialog.accept());
  await zoe.page.getByRole("button", { name: "Delete “meet at 7pm at the wrong place” for everyone" }).click();
  for (const person of [zoe, abe]) {
    await expect(person.page.locator("main .text.deleted", { hasText: "message deleted" })).toHaveCount(1);
    await expect(person.messageWithText("meet at 7pm at the wrong place")).toHaveCount(0);
    await expect(person.messageWithText("see you there")).toBeVisible();
  }
  // And after a reload, from the server's history.
  await abe.page.reload();
  await abe.open("Typos");
  await expect(abe.page.locator("main .text.deleted", { hasText: "message deleted" })).toHaveCount(1);
  await expect(abe.messageWithText("meet at 7pm at the wrong place")).toHaveCount(0);
});

test("an edited message shows its new text on every page, marked edited", async ({ browser, cluster, people }) => {
  const cal = await Person.register(browser, cluster, "cal", 0);
  const dee = await Person.register(browser, cluster, "dee", 1);
  people.push(cal, dee);
  await cal.createGroup("Plans", ["dee"]);
  await dee.acceptInvitation("Plans");
  await cal.send("dinner at 7");
  await expect(dee.messageWithText("dinner at 7")).toBeVisible();

  // Only his own messages offer Edit; he changes the text in place.
  await expect(dee.page.getByRole("button", { name: /^Edit / })).toHaveCount(0);
  await cal.page.getByRole("button", { name: "Edit “dinner at 7”" }).click();
  const form = cal.page.getByRole("form", { name: "Edit message" });
  await form.getByLabel("New text").fill("dinner at 8");
  await form.getByRole("button", { name: "Save" }).click();
  for (const person of [cal, dee]) {
    await expect(person.messageWithText("dinner at 8")).toBeVisible();
    await expect(person.messageWithText("dinner at 7")).toHaveCount(0);
    await expect(person.page.locator("main li.message .edited")).toHaveCount(1);
  }
  await dee.page.reload();
  await dee.open("Plans");
  await expect(dee.messageWithText("dinner at 8")).toBeVisible();
  await expect(dee.page.locator("main li.message .edited")).toHaveCount(1);
});

test("a reply quotes its message and jumps to it, even from beyond the loaded page", async ({ browser, cluster, people }) => {
  const eli = await Person.register(browser, cluster, "eli", 0);
  const fox = await Person.register(browser, cluster, "fox", 1);
  people.push(eli, fox);
  await eli.createGroup("Threads", ["fox"]);
  await fox.acceptInvitation("Threads");
  await fox.send("what time tomorrow?");
  // More than a page of talk after it (the page loads 40 at a time).
  for (let i = 1; i <= 41; i++) await eli.send(`filler ${i}`);

  // Eli answers fox's question: the answer carries the quote, on both pages.
  await eli.page.getByRole("button", { name: "Reply to “what time tomorrow?”" }).click();
  await expect(eli.page.getByRole("status").filter({ hasText: "Replying to fox" })).toBeVisible();
  await eli.send("at nine");
  for (const person of [eli, fox]) {
    const answer = person.page.locator("main li.message", { hasText: "at nine" });
    await expect(answer.locator(".quote")).toContainText("fox what time tomorrow?");
  }

  // Fox loads the group afresh: the question is beyond the first page, but
  // the quote still says what it answers, and following it brings it back.
  await fox.page.reload();
  await fox.open("Threads");
  await expect(fox.messageWithText("filler 41")).toBeVisible();
  await expect(fox.page.locator("main li.message", { hasText: "what time tomorrow?" }).filter({ hasNot: fox.page.locator(".quote") })).toHaveCount(0);
  const answer = fox.page.locator("main li.message", { hasText: "at nine" });
  await expect(answer.locator(".quote")).toContainText("what time tomorrow?");
  await answer.getByRole("button", { name: "Replying to fox: show that message" }).click();
  const question = fox.page.locator("main li.message.highlight", { hasText: "what time tomorrow?" });
  await expect(question).toBeVisible();
  await expect(question).toBeInViewport();
});

test("typing shows on the others' pages and lapses by itself", async ({ browser, cluster, people }) => {
  const ida = await Person.register(browser, cluster, "ida", 0);
  const jay = await Person.register(browser, cluster, "jay", 1);
  people.push(ida, jay);
  await ida.createGroup("Chatter", ["jay"]);
  await jay.acceptInvitation("Chatter");
  await expect(jay.page.locator("main li.message.system", { hasText: "jay joined" })).toBeVisible();

  const typing = jay.page.locator("main p.typing");
  await ida.page.getByLabel(/^Message to/).fill("half a thought");
  await expect(typing).toHaveText("ida is typing…");
  // Ida's own page does not tell her she is typing.
  await expect(ida.page.locator("main p.typing")).toHaveCount(0);
  // Nothing more comes: it lapses on its own (6 s), with nothing stored.
  await expect(typing).toHaveCount(0, { timeout: 15_000 });
  await ida.page.getByLabel(/^Message to/).press("Enter");
  await expect(jay.messageWithText("half a thought")).toBeVisible();
  await expect(typing).toHaveCount(0);
});

test("an owner hands a group over; the new owner deletes it for everyone", async ({ browser, cluster, people }) => {
  const kai = await Person.register(browser, cluster, "kai", 0);
  const lia = await Person.register(browser, cluster, "lia", 1);
  people.push(kai, lia);
  await kai.createGroup("Movers", ["lia"]);
  await lia.acceptInvitation("Movers");

  // Only the owner sees the owner's controls.
  await lia.page.getByRole("button", { name: "Members" }).click();
  const liaPanel = lia.page.getByRole("complementary", { name: "Members" });
  await expect(liaPanel.locator('[data-member="kai"]')).toBeVisible();
  await expect(liaPanel.getByRole("button", { name: "Delete group" })).toHaveCount(0);

  await kai.page.getByRole("button", { name: "Members" }).click();
  const kaiPanel = kai.page.getByRole("complementary", { name: "Members" });
  kai.page.once("dialog", (dialog) => void dialog.accept());
  await kaiPanel.getByRole("button", { name: "Make lia the owner" }).click();
  await expect(kaiPanel.locator('[data-member="lia"] .tag')).toHaveText("owner");
  await expect(kaiPanel.locator('[data-member="kai"] .tag')).toHaveText("admin");
  await expect(kaiPanel.getByRole("button", { name: "Delete group" })).toHaveCount(0);

  // Lia, the owner now, deletes it: it leaves both sidebars.
  await expect(liaPanel.getByRole("button", { name: "Delete group" })).toBeVisible();
  lia.page.once("dialog", (dialog) => void dialog.accept());
  await liaPanel.getByRole("button", { name: "Delete group" }).click();
  await expect(lia.entry("Movers")).toHaveCount(0);
  await expect(kai.entry("Movers")).toHaveCount(0);
});

test("a mention stands out on the mentioned member's page only", async ({ browser, cluster, people }) => {
  const mia = await Person.register(browser, cluster, "mia", 0);
  const ned = await Person.register(browser, cluster, "ned", 1);
  people.push(mia, ned);
  await mia.createGroup("Shifts", ["ned"]);
  await ned.acceptInvitation("Shifts");
  await mia.send("@ned can you take Friday?");
  await mia.send("thanks all");
  await expect(ned.messageWithText("thanks all")).toBeVisible();
  await expect(ned.page.locator("main li.message.mentioned")).toHaveCount(1);
  await expect(ned.page.locator("main li.message.mentioned")).toContainText("@ned can you take Friday?");
  await expect(mia.page.locator("main li.message.mentioned")).toHaveCount(0);
});

test("an owner renames and describes a group; members see it", async ({ browser, cluster, people }) => {
  const ora = await Person.register(browser, cluster, "ora", 0);
  const pip = await Person.register(browser, cluster, "pip", 1);
  people.push(ora, pip);
  await ora.createGroup("Draft name", ["pip"]);
  await pip.acceptInvitation("Draft name");

  await ora.page.getByRole("button", { name: "Members" }).click();
  const panel = ora.page.getByRole("complementary", { name: "Members" });
  await panel.getByRole("button", { name: "Rename or describe" }).click();
  const form = panel.getByRole("form", { name: "Group name and description" });
  await form.getByLabel("Name").fill("Climbing club");
  await form.getByLabel("Description").fill("Tuesdays at the wall");
  await form.getByRole("button", { name: "Save" }).click();
  await expect(panel.locator(".group-description")).toHaveText("Tuesdays at the wall");

  // Pip's sidebar follows, and the group says who renamed it.
  await expect(pip.entry("Climbing club")).toBeVisible();
  await expect(pip.page.locator("main li.message.system", { hasText: "ora renamed the group to Climbing club" })).toBeVisible();
  await pip.page.getByRole("button", { name: "Members" }).click();
  const pipPanel = pip.page.getByRole("complementary", { name: "Members" });
  await expect(pipPanel.locator(".group-description")).toHaveText("Tuesdays at the wall");
  await expect(pipPanel.getByRole("button", { name: "Rename or describe" })).toHaveCount(0);
});

test("reactions are counted live on every page, each reader's own marked, and listed by who", async ({ browser, cluster, people }) => {
  const rex = await Person.register(browser, cluster, "rex", 0);
  const sam = await Person.register(browser, cluster, "sam", 1);
  const tea = await Person.register(browser, cluster, "tea", 0);
  people.push(rex, sam, tea);
  await rex.createGroup("Picnic", ["sam", "tea"]);
  await sam.acceptInvitation("Picnic");
  await tea.acceptInvitation("Picnic");
  await rex.send("saturday at noon?");
  for (const person of [sam, tea]) await expect(person.messageWithText("saturday at noon?")).toBeVisible();
  const chip = (person: Person, name: string) => person.page.getByRole("button", { name, exact: true });

  // Sam picks 👍: every page counts it, live; only Sam's marks it his.
  await sam.page.getByRole("button", { name: "React to “saturday at noon?”" }).click();
  await sam.page.getByRole("button", { name: "React 👍" }).click();
  for (const person of [rex, sam, tea]) await expect(chip(person, "👍 1")).toBeVisible();
  await expect(chip(sam, "👍 1")).toHaveAttribute("aria-pressed", "true");
  await expect(chip(rex, "👍 1")).toHaveAttribute("aria-pressed", "false");

  // Tea adds hers with one click on the count; the change is no line of its own.
  await chip(tea, "👍 1").click();
  for (const person of [rex, sam, tea]) await expect(chip(person, "👍 2")).toBeVisible();
  await expect(rex.page.locator("main li.message.system", { hasText: "reacted" })).toHaveCount(0);
  await rex.page.getByRole("button", { name: "Who reacted to “saturday at noon?”" }).click();
  await expect(rex.page.locator("main .reactors")).toHaveText("sam 👍, tea 👍");

  // Sam takes his back; a page loaded afresh reads the counts from history.
  await chip(sam, "👍 2").click();
  for (const person of [rex, sam, tea]) await expect(chip(person, "👍 1")).toBeVisible();
  await tea.page.reload();
  await tea.open("Picnic");
  await expect(chip(tea, "👍 1")).toHaveAttribute("aria-pressed", "true");
  await expect(chip(sam, "👍 1")).toHaveAttribute("aria-pressed", "false");
});

test("a muted group stays quiet: no count in the tab's title, no notification, except a mention", async ({ browser, cluster, people }) => {
  const val = await Person.register(browser, cluster, "val", 0);
  const wyn = await Person.register(browser, cluster, "wyn", 1);
  people.push(val, wyn);
  await val.createGroup("Quiet", ["wyn"]);
  await wyn.acceptInvitation("Quiet");
  // Read up to now (with the tab in front), so what follows is all that is new.
  await wyn.open("Quiet");
  await expect(wyn.page).toHaveTitle("Switchboard");
  // Wyn's tab is in the background and records the notifications it would
  // show: headless Chromium has neither a hidden tab nor a notification centre.
  await wyn.context.addInitScript(() => {
    const shown: { title: string; body: string }[] = [];
    let permission = "default";
    class Recorded {
      static get permission() {
        return permission;
      }
      static async requestPermission() {
        permission = "granted";
        return permission;
      }
      onclick: (() => void) | null = null;
      constructor(title: string, options?: { body?: string }) {
        shown.push({ title, body: options?.body ?? "" });
      }
      close() {}
    }
    Object.assign(window, { Notification: Recorded, shownNotifications: shown });
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
  });
  await wyn.page.reload();
  await wyn.open("Quiet");
  await wyn.page.getByRole("button", { name: "Turn on notifications" }).click();
  await expect(wyn.page.getByRole("button", { name: "Turn on notifications" })).toHaveCount(0);
  const shown = () => wyn.page.evaluate(() => (window as unknown as { shownNotifications: { title: string; body: string }[] }).shownNotifications);

  await val.send("first");
  await expect(wyn.messageWithText("first")).toBeVisible();
  await expect(wyn.page).toHaveTitle("(1) Switchboard");
  expect(await shown()).toEqual([{ title: "New message from val in Quiet", body: "first" }]);

  // Muted: still delivered, no longer counted in the title nor notified.
  await wyn.page.getByRole("button", { name: "Mute", exact: true }).click();
  await expect(wyn.page.getByRole("button", { name: "Unmute" })).toHaveAttribute("aria-pressed", "true");
  await expect(wyn.entry("Quiet")).toContainText("muted");
  await expect(wyn.page).toHaveTitle("Switchboard");
  await val.send("second");
  await expect(wyn.messageWithText("second")).toBeVisible();
  await expect(wyn.page).toHaveTitle("Switchboard");
  expect(await shown()).toHaveLength(1);

  // A mention gets through; unmuted, the count comes back.
  await val.send("@wyn are you in?");
  await expect.poll(shown).toHaveLength(2);
  expect((await shown())[1]).toEqual({ title: "val mentioned you in Quiet", body: "@wyn are you in?" });
  await wyn.page.getByRole("button", { name: "Unmute" }).click();
  await expect(wyn.page).toHaveTitle("(3) Switchboard");
  // The server keeps it: a page loaded afresh shows it unmuted.
  await wyn.page.reload();
  await wyn.open("Quiet");
  await expect(wyn.page.getByRole("button", { name: "Mute", exact: true })).toHaveAttribute("aria-pressed", "false");
});

test("a person renames themselves; someone in their group finds them by the new name and writes", async ({ browser, cluster, people }) => {
  const zia = await Person.register(browser, cluster, "zia", 0);
  const yul = await Person.register(browser, cluster, "yul", 1);
  people.push(zia, yul);
  await zia.createGroup("Choir", ["yul"]);
  await yul.acceptInvitation("Choir");

  // Zia renames herself from her name at the top of the sidebar.
  await zia.page.getByRole("button", { name: "Your profile" }).click();
  const profile = zia.page.getByRole("dialog");
  await profile.getByLabel("Display name").fill("Zia Lin");
  await profile.getByRole("button", { name: "Save" }).click();
  await expect(zia.page.getByRole("button", { name: "Your profile" })).toHaveText("Zia Lin");

  // Yul finds her by the start of it, picks her, and writes.
  const chat = await yul.dialog("New chat");
  await chat.getByLabel("Find people").fill("zzz");
  await chat.getByRole("button", { name: "Search" }).click();
  await expect(chat.getByRole("list", { name: "People found" })).toHaveText("Nobody found.");
  await chat.getByLabel("Find people").fill("zia l");
  await chat.getByRole("button", { name: "Search" }).click();
  await chat.getByRole("button", { name: "Zia Lin @zia" }).click();
  await expect(chat.getByLabel("User id")).toHaveValue("zia");
  await chat.getByLabel("First message").fill("hello Zia");
  await chat.getByRole("button", { name: "Send" }).click();
  await expect(zia.entry("Yul")).toBeVisible();

  // Both pages, loaded afresh, call her by her new name.
  await yul.page.reload();
  await expect(yul.entry("Zia Lin")).toBeVisible();
  await zia.page.reload();
  await expect(zia.page.getByRole("button", { name: "Your profile" })).toHaveText("Zia Lin");
});

test("blocking someone closes your chat both ways and folds their group messages away", async ({ browser, cluster, people }) => {
  const kit = await Person.register(browser, cluster, "kit", 0);
  const lou = await Person.register(browser, cluster, "lou", 1);
  people.push(kit, lou);
  await kit.createGroup("Band", ["lou"]);
  await lou.acceptInvitation("Band");
  const chat = await lou.dialog("New chat");
  await chat.getByLabel("User id").fill("kit");
  await chat.getByLabel("First message").fill("fancy a jam?");
  await chat.getByRole("button", { name: "Send" }).click();
  await expect(kit.entry("Lou")).toBeVisible();

  // Kit blocks Lou from their chat.
  await kit.open("Lou");
  kit.page.once("dialog", (dialog) => void dialog.accept());
  await kit.page.getByRole("button", { name: "Block", exact: true }).click();
  await expect(kit.page.getByRole("button", { name: "Unblock", exact: true })).toBeVisible();

  // Lou's next message there is refused, and says why.
  const box = lou.page.getByLabel(/^Message to/);
  await box.fill("hello?");
  await box.press("Enter");
  const failed = lou.page.locator("main li.message.pending.failed");
  await expect(failed).toContainText("kit does not take messages from you");
  await failed.getByRole("button", { name: "Discard" }).click();

  // In the group they share, Lou's message reaches Kit folded away.
  await lou.open("Band");
  await lou.send("new song tonight");
  await kit.open("Band");
  const folded = kit.page.locator("main li.message.folded");
  await expect(folded).toContainText("Message from someone you blocked");
  await expect(kit.messageWithText("new song tonight")).toHaveCount(0);
  await folded.getByRole("button", { name: "Show" }).click();
  await expect(kit.messageWithText("new song tonight")).toBeVisible();

  // Unblocked from the contacts dialog: Lou writes again.
  const contacts = await kit.dialog("Contacts");
  await contacts.locator("[data-blocked=lou]").getByRole("button", { name: "Unblock" }).click();
  await expect(contacts.locator("[data-blocked=lou]")).toHaveCount(0);
  await contacts.getByRole("button", { name: "Close" }).click();
  await lou.open("Kit");
  await lou.send("back on?");
  await kit.open("Lou");
  await expect(kit.messageWithText("back on?")).toBeVisible();
});

test("a stranger's message waits under Message requests, uncounted, until accepted", async ({ browser, cluster, people }) => {
  const nia = await Person.register(browser, cluster, "nia", 0);
  const oto = await Person.register(browser, cluster, "oto", 1);
  people.push(nia, oto);
  const chat = await oto.dialog("New chat");
  await chat.getByLabel("User id").fill("nia");
  await chat.getByLabel("First message").fill("is the bike still for sale?");
  await chat.getByRole("button", { name: "Send" }).click();

  const requests = nia.sidebar.getByRole("region", { name: "Message requests" });
  await expect(requests.getByRole("button", { name: /Oto/ })).toBeVisible();
  await expect(nia.page).toHaveTitle("Switchboard");
  // Oto started it: for him it is an ordinary chat.
  await expect(oto.sidebar.getByRole("region", { name: "Message requests" })).toHaveCount(0);

  await nia.open("Oto");
  const banner = nia.page.getByRole("region", { name: "Message request", exact: true });
  await expect(banner).toContainText("Oto is not in your contacts");
  await banner.getByRole("button", { name: "Accept" }).click();
  await expect(banner).toHaveCount(0);
  await expect(nia.sidebar.getByRole("region", { name: "Message requests" })).toHaveCount(0);
  await expect(nia.sidebar.getByRole("region", { name: "Chats" }).getByRole("button", { name: /Oto/ })).toBeVisible();
  await nia.page.reload();
  await expect(nia.sidebar.getByRole("region", { name: "Chats" }).getByRole("button", { name: /Oto/ })).toBeVisible();
});

test("search finds a message by its words' starts, marks them, and opens the conversation at it", async ({ browser, cluster, people }) => {
  const bea = await Person.register(browser, cluster, "bea", 0);
  const dot = await Person.register(browser, cluster, "dot", 1);
  people.push(bea, dot);
  await bea.createGroup("Archive", ["dot"]);
  await dot.acceptInvitation("Archive");
  await bea.send("the Invoice number is 4411");
  // Enough after it that it is not on the first page the conversation loads.
  for (let i = 1; i <= 42; i++) await bea.send(`later note ${i}`);
  await expect(dot.messageWithText("later note 42")).toBeVisible();
  // Loaded afresh, the page holds the latest page only.
  await dot.page.reload();
  await dot.open("Archive");
  await expect(dot.messageWithText("later note 42")).toBeVisible();
  await expect(dot.messageWithText("the Invoice number is 4411")).toHaveCount(0);

  const dialog = await dot.dialog("Search");
  await dialog.getByLabel("Words").fill("invo 44");
  await dialog.getByRole("button", { name: "Search", exact: true }).click();
  const hits = dialog.getByRole("list", { name: "Search results" }).getByRole("button");
  await expect(hits).toHaveCount(1);
  await expect(hits.locator(".hit-text")).toHaveText("the Invoice number is 4411");
  await expect(hits.locator("mark")).toHaveText(["Invoice", "4411"]);
  await hits.click();
  await expect(dialog).toBeHidden();
  await expect(dot.messageWithText("the Invoice number is 4411")).toBeInViewport();

  // Words nobody wrote find nothing; a page of hits goes on with "More results".
  const again = await dot.dialog("Search");
  await again.getByLabel("Words").fill("invoice receipt");
  await again.getByRole("button", { name: "Search", exact: true }).click();
  await expect(again.getByText("No messages found.")).toBeVisible();
  await again.getByLabel("Words").fill("later");
  await again.getByRole("button", { name: "Search", exact: true }).click();
  const later = again.getByRole("list", { name: "Search results" }).getByRole("button");
  await expect(later).toHaveCount(20);
  await expect(later.first().locator(".hit-text")).toHaveText("later note 42");
  await again.getByRole("button", { name: "More results" }).click();
  await expect(later).toHaveCount(40);
});
