// Shared by the browser tests: one cluster per test run (worker-scoped),
// and a "person": one user in a browser context of their own, on the page
// served by one of the gateways, driven the way a person would.

import { copyFileSync, mkdirSync } from "node:fs";
import path from "node:path";

import { test as base, expect, type Browser, type BrowserContext, type Locator, type Page } from "@playwright/test";

import { Cluster, REPO_DIR, defaultClusterDir } from "../cluster";

const SCREENSHOTS = path.resolve(REPO_DIR, "web/test-results/screenshots");
const DOCS_SCREENSHOTS = path.resolve(REPO_DIR, "docs/screenshots");

/**
 * The user ids opened in this worker, whose cluster every test shares: a
 * test that took another's id would find that user there already (and
 * pass or fail by the order tests ran in), so an id is used once.
 */
const openedIds = new Set<string>();

export class Person {
  /** What the browser refused under the gateway's Content-Security-Policy. */
  readonly cspViolations: string[] = [];

  private constructor(
    readonly id: string,
    readonly context: BrowserContext,
    readonly page: Page,
  ) {}

  /** Opens the page on gateway `gateway` and creates the account there. */
  static async register(browser: Browser, cluster: Cluster, id: string, gateway: number, viewport?: { width: number; height: number }): Promise<Person> {
    const person = await Person.openAt(browser, cluster.url(gateway), id, viewport);
    await person.createAccount();
    await expect(person.connection).toHaveText("Connected");
    return person;
  }

  /** Opens the page served from `url` (a gateway, or another site hosting it). */
  static async openAt(browser: Browser, url: string, id: string, viewport?: { width: number; height: number }): Promise<Person> {
    if (openedIds.has(id)) throw new Error(`user id ${id} is already another browser test's: pick one no test uses`);
    openedIds.add(id);
    const context = await browser.newContext({
      baseURL: url,
      viewport: viewport ?? { width: 1280, height: 800 },
      isMobile: (viewport?.width ?? 1280) < 600,
      hasTouch: (viewport?.width ?? 1280) < 600,
    });
    const page = await context.newPage();
    page.on("pageerror", (err) => console.error(`[${id}] page error:`, err.message));
    if (process.env.SB_TEST_CONSOLE) {
      // Every stream event, in the test's output.
      await context.addInitScript(() => localStorage.setItem("switchboard.debug", "1"));
      page.on("console", (message) => console.log(`[${id}] ${message.text()}`));
    }
    const person = new Person(id, context, page);
    page.on("console", (message) => {
      if (/Content Security Policy/i.test(message.text())) person.cspViolations.push(message.text());
    });
    await page.goto("/");
    return person;
  }

  /** Fills in and submits the "Create account" form. */
  async createAccount(): Promise<void> {
    const page = this.page;
    await page.getByRole("tab", { name: "Create account" }).click();
    await page.getByLabel("User id").fill(this.id);
    await page.getByLabel("Display name (optional)").fill(this.id.charAt(0).toUpperCase() + this.id.slice(1));
    await page.getByLabel("Password").fill(`${this.id} password`);
    await page.getByRole("form", { name: "Create account" }).getByRole("button", { name: "Create account" }).click();
  }

  get sidebar(): Locator {
    return this.page.getByRole("navigation", { name: "Conversations" });
  }

  get connection(): Locator {
    return this.page.locator(".connection [role=status]");
  }

  /** The sidebar entry whose title is `title`. */
  entry(title: string): Locator {
    return this.sidebar.locator("button.entry").filter({ has: this.page.locator(".entry-title", { hasText: new RegExp(`^${escape(title)}$`) }) });
  }

  async open(title: string): Promise<void> {
    await this.entry(title).click();
    await expect(this.heading).toContainText(title);
  }

  get heading(): Locator {
    return this.page.locator("main h1");
  }

  /** The open conversation's messages. */
  get messages(): Locator {
    return this.page.locator("main .message-items").first();
  }

  messageWithText(text: string, within: Locator = this.messages): Locator {
    return within.locator("li.message").filter({ has: this.page.locator(".text", { hasText: new RegExp(`^${escape(text)}$`) }) });
  }

  /** Types into the open conversation's box and presses Enter. */
  async send(text: string): Promise<void> {
    const box = this.page.getByLabel(/^Message to/);
    await box.fill(text);
    await box.press("Enter");
    await expect(this.messageWithText(text).last()).toBeVisible();
    await expect(this.page.locator("main li.message.pending")).toHaveCount(0);
  }

  async dialog(button: string): Promise<Locator> {
    await this.sidebar.getByRole("button", { name: button, exact: true }).click();
    const dialog = this.page.getByRole("dialog");
    await expect(dialog).toBeVisible();
    return dialog;
  }

  async createGroup(
    name: string,
    invite: string[],
    policy: "open" | "invite-only" = "open",
    history?: "all" | "from-join",
  ): Promise<void> {
    const dialog = await this.dialog("New group");
    await dialog.getByLabel("Group name").fill(name);
    if (policy === "invite-only") await dialog.getByLabel("Only invited users").check();
    if (history === "all") await dialog.getByLabel("Everything said before they joined").check();
    if (history === "from-join") await dialog.getByLabel("Only messages from when they join").check();
    await dialog.getByLabel("Invite (user ids, optional)").fill(invite.join(", "));
    await dialog.getByRole("button", { name: "Create group" }).click();
    await expect(this.heading).toContainText(name);
  }

  /** Accepts the invitation to `name` shown in the sidebar. */
  async acceptInvitation(name: string): Promise<void> {
    const invitation = this.sidebar.locator("li.invitation", { hasText: name });
    await invitation.getByRole("button", { name: "Join" }).click();
    await expect(this.heading).toContainText(name);
  }

  /** Adds `other` as a contact (or adds them back). */
  async addContact(other: string): Promise<void> {
    const dialog = await this.dialog("Contacts");
    await dialog.getByLabel("Add a contact").fill(other);
    await dialog.getByRole("button", { name: "Add", exact: true }).click();
    await expect(dialog.getByRole("status")).toContainText(other);
    await dialog.getByRole("button", { name: "Close" }).click();
  }

  /** The id of the open group (from its member list). */
  async openGroupId(): Promise<string> {
    await this.page.getByRole("button", { name: "Members" }).click();
    const panel = this.page.getByRole("complementary", { name: "Members" });
    const id = (await panel.locator("code").first().textContent())?.trim() ?? "";
    await panel.getByRole("button", { name: "Close members" }).click();
    return id;
  }

  async screenshot(name: string, toDocs = false): Promise<void> {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const file = path.join(SCREENSHOTS, `${name}.png`);
    await this.page.mouse.move(0, 0);
    await this.page.screenshot({ path: file });
    // The README's screenshots change only when asked (SB_UPDATE_SCREENSHOTS=1),
    // so a test run leaves the tree clean.
    if (toDocs && process.env.SB_UPDATE_SCREENSHOTS === "1") {
      mkdirSync(DOCS_SCREENSHOTS, { recursive: true });
      copyFileSync(file, path.join(DOCS_SCREENSHOTS, `${name}.png`));
    }
  }

  async close(): Promise<void> {
    await this.context.close();
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export const test = base.extend<{ people: Person[] }, { cluster: Cluster }>({
  cluster: [
    // eslint-disable-next-line no-empty-pattern
    async ({}, use) => {
      const cluster = await Cluster.start({ dir: defaultClusterDir() });
      try {
        await use(cluster);
      } finally {
        await cluster.stop();
      }
    },
    { scope: "worker", timeout: 60_000 },
  ],
  // Contexts opened by a test, closed after it; the cluster's logs on failure.
  people: async ({ cluster }, use, testInfo) => {
    const people: Person[] = [];
    await use(people);
    if (testInfo.status !== testInfo.expectedStatus) {
      await testInfo.attach("cluster logs", { body: cluster.logs(), contentType: "text/plain" });
      console.error(cluster.logs());
    }
    await Promise.all(people.map((p) => p.close()));
    // The page ran whole under its policy: nothing it did was refused.
    for (const person of people) expect(person.cspViolations, `${person.id}'s page`).toEqual([]);
  },
});

export { expect };
