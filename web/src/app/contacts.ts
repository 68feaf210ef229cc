// Contacts: two users who added each other are mutual (presence, topics).

import { contactInfo } from "../api/convert";
import type { AppContext } from "./context";

export class Contacts {
  constructor(private readonly ctx: AppContext) {}

  /** Resolves to what to tell the user. */
  async add(userId: string): Promise<string | undefined> {
    return this.ctx.act("Could not add the contact", async () => {
      const answer = await this.ctx.clients.contacts.addContact({ userId: userId.trim() });
      await this.ctx.refreshNow();
      const who = answer.contact?.userId ?? userId.trim();
      if (answer.alreadyAdded) return `${who} is already in your contacts.`;
      return answer.contact?.mutual
        ? `${who} added: you are mutual contacts now.`
        : `${who} added. Once they add you too, you can see each other online and use topics.`;
    });
  }

  async remove(userId: string): Promise<void> {
    await this.ctx.act("Could not remove the contact", async () => {
      await this.ctx.clients.contacts.removeContact({ userId });
      await this.ctx.refreshNow();
    });
  }

  /** Blocks (or unblocks) a user: no direct messages either way, no presence; their group messages are hidden here. */
  async block(userId: string, blocked: boolean): Promise<void> {
    await this.ctx.act(blocked ? "Could not block" : "Could not unblock", async () => {
      await this.ctx.clients.contacts.blockUser({ userId, blocked });
      await this.refresh();
    });
  }

  /** People to talk to: the user with this exact id, and those one shares a group with by name or id. */
  async find(query: string): Promise<{ userId: string; displayName: string }[]> {
    const answer = await this.ctx.act("Could not search", () => this.ctx.clients.contacts.findPeople({ query }));
    return answer?.users.map((u) => ({ userId: u.userId, displayName: u.displayName })) ?? [];
  }

  /** Contacts change on the other side too (someone added us back): ask again. */
  async refresh(): Promise<void> {
    try {
      const [answer, blocked] = await Promise.all([
        this.ctx.clients.contacts.listContacts({}),
        this.ctx.clients.contacts.listBlocked({}),
      ]);
      this.ctx.store().setContacts(
        answer.contacts.map(contactInfo),
        answer.requests.map(contactInfo),
        blocked.blocked.map((b) => b.userId),
      );
      this.ctx.touch();
    } catch (err) {
      console.warn("listing contacts failed", err);
    }
  }
}
