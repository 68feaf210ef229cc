// The gateway a page is connected to restarts (drained, or crashed), or
// hangs: the page notices, reconnects to its origin with its cursors, and
// shows what was sent meanwhile once each.

import { expect, Person, test } from "./fixtures";

test("restarting the page's gateway: it reconnects and misses nothing, twice nothing", async ({ browser, cluster, people }) => {
  const gus = await Person.register(browser, cluster, "gus", 0); // the gateway that restarts
  const hal = await Person.register(browser, cluster, "hal", 1);
  people.push(gus, hal);

  await hal.createGroup("Night shift", ["gus"]);
  await gus.acceptInvitation("Night shift");
  // Hal is among gus's contacts: his direct message is no message request.
  await gus.addContact("hal");
  await gus.send("on my way");
  await expect(hal.messageWithText("on my way")).toBeVisible();

  const rounds: { how: "terminate" | "kill"; label: string }[] = [
    { how: "terminate", label: "drained" },
    { how: "kill", label: "crashed" },
  ];
  let dm = 0;
  for (const round of rounds) {
    await cluster.stopGateway(0, round.how);
    await expect(gus.connection).toHaveText(/Offline|Reconnecting/);

    // While gus is away: three messages to the open group, and a direct one.
    for (let i = 1; i <= 3; i++) await hal.send(`${round.label} ${i}`);
    if (round.how === "terminate") {
      const chat = await hal.dialog("New chat");
      await chat.getByLabel("User id").fill("gus");
      await chat.getByLabel("First message").fill("did you get my messages?");
      await chat.getByRole("button", { name: "Send" }).click();
      await expect(hal.heading).toContainText("Gus");
      await hal.open("Night shift");
    }
    dm += round.how === "terminate" ? 1 : 0;

    await cluster.startGateway(0);
    await expect(gus.connection).toHaveText("Connected");
    for (let i = 1; i <= 3; i++) await expect(gus.messageWithText(`${round.label} ${i}`)).toHaveCount(1);
    await expect(gus.entry("Hal").getByTestId("unread")).toHaveText(String(dm));
    await expect(gus.entry("Hal").getByTestId("preview")).toHaveText("hal: did you get my messages?");
  }

  // Live again: a new message arrives once, and the stream still counts right.
  await hal.send("still there?");
  await expect(gus.messageWithText("still there?")).toHaveCount(1);
  await expect(gus.messages.locator("li.message .text", { hasText: /^(drained|crashed) \d$/ })).toHaveCount(6);
  await gus.send("yes");
  await expect(hal.messageWithText("yes")).toHaveCount(1);
});

test("a gateway that hangs is noticed by the heartbeat", async ({ browser, cluster, people }) => {
  const ivy = await Person.register(browser, cluster, "ivy", 0);
  const jon = await Person.register(browser, cluster, "jon", 1);
  people.push(ivy, jon);
  await jon.createGroup("Quiet", ["ivy"]);
  await ivy.acceptInvitation("Quiet");
  await expect(ivy.page.locator("main li.message.system", { hasText: "ivy joined" })).toBeVisible();

  // Frozen: the TCP connection stays open but nothing comes. Three missed
  // heartbeats (1 s each here) and the page calls it dead.
  const frozeAt = Date.now();
  cluster.gateways[0]!.freeze();
  try {
    await expect(ivy.connection).toHaveText(/Offline|Reconnecting/, { timeout: 10_000 });
    expect(Date.now() - frozeAt).toBeGreaterThanOrEqual(2500);
    await jon.send("are you frozen?");
  } finally {
    cluster.gateways[0]!.thaw();
  }
  await expect(ivy.connection).toHaveText("Connected", { timeout: 30_000 });
  await expect(ivy.messageWithText("are you frozen?")).toHaveCount(1);
});
