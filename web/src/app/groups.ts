// Groups: create, join, leave, invite, remove; members and who is online.

import { errorClause } from "../api/errors";
import { memberInfo } from "../api/convert";
import { HistoryVisibility, JoinPolicy } from "../gen/switchboard/v1/switchboard_pb";
import type { GroupHistory, GroupPolicy } from "../state/model";
import type { AppContext } from "./context";

export class Groups {
  /** Groups whose member list is on screen (refreshed on membership changes). */
  private watched = new Set<string>();

  constructor(private readonly ctx: AppContext) {}

  /** Resolves to the new group's conversation id. */
  async create(
    name: string,
    policy: GroupPolicy,
    history: GroupHistory,
    invite: string[],
  ): Promise<string | undefined> {
    return this.ctx.act("Could not create the group", async () => {
      const answer = await this.ctx.clients.groups.createGroup({
        name: name.trim(),
        policy: policy === "invite-only" ? JoinPolicy.INVITE_ONLY : JoinPolicy.OPEN,
        history: history === "from-join" ? HistoryVisibility.FROM_JOIN : HistoryVisibility.ALL,
        invite,
      });
      await this.ctx.refreshNow();
      return answer.group?.conversationId;
    });
  }

  async join(groupId: string): Promise<string | undefined> {
    return this.ctx.act("Could not join the group", async () => {
      const answer = await this.ctx.clients.groups.joinGroup({ groupId: groupId.trim() });
      await this.ctx.refreshNow();
      return answer.group?.conversationId;
    });
  }

  async leave(groupId: string): Promise<boolean> {
    return this.dropAfter("Could not leave the group", groupId, () => this.ctx.clients.groups.leaveGroup({ groupId }));
  }

  /** Runs `call`; once it succeeds the group leaves this page's lists. True if it did. */
  private async dropAfter(failure: string, groupId: string, call: () => Promise<unknown>): Promise<boolean> {
    const done = await this.ctx.act(failure, async () => {
      await call();
      const store = this.ctx.store();
      const group = store.groups.get(groupId);
      if (group) store.removeConversation(group.conversationId);
      await this.ctx.refreshNow();
      return true;
    });
    return done ?? false;
  }

  /** The owner or an admin renames the group and sets its description; true once saved. */
  async update(groupId: string, name: string, description: string): Promise<boolean> {
    const done = await this.ctx.act("Could not change the group", async () => {
      await this.ctx.clients.groups.updateGroup({ groupId, name, description });
      await this.ctx.refreshNow();
      return true;
    });
    return done ?? false;
  }

  /** The owner hands the group to a member (staying an admin). */
  async transfer(groupId: string, userId: string): Promise<void> {
    await this.ctx.act("Could not hand the group over", async () => {
      await this.ctx.clients.groups.transferOwnership({ groupId, newOwnerId: userId });
      await this.ctx.refreshNow();
    });
  }

  /** The owner deletes the group for everyone; true once it is gone. */
  async disband(groupId: string): Promise<boolean> {
    return this.dropAfter("Could not delete the group", groupId, () => this.ctx.clients.groups.disbandGroup({ groupId }));
  }

  /** Resolves to what to tell the user. */
  async invite(groupId: string, userId: string): Promise<string | undefined> {
    return this.ctx.act("Could not invite", async () => {
      const answer = await this.ctx.clients.groups.inviteMember({ groupId, userId: userId.trim() });
      return answer.alreadyMember ? `${userId.trim()} is already a member.` : `Invited ${userId.trim()}.`;
    });
  }

  async remove(groupId: string, userId: string): Promise<void> {
    await this.ctx.act("Could not remove the member", async () => {
      await this.ctx.clients.groups.removeMember({ groupId, userId });
      await this.loadMembers(groupId);
    });
  }

  /** Keeps a group's member list (with who is online) fresh while it is on screen. */
  watch(groupId: string, on: boolean): void {
    if (on) {
      this.watched.add(groupId);
      void this.loadMembers(groupId);
    } else {
      this.watched.delete(groupId);
    }
  }

  /** A membership message arrived in a group. */
  membershipChanged(groupId: string): void {
    if (this.watched.has(groupId)) void this.loadMembers(groupId);
  }

  private async loadMembers(groupId: string): Promise<void> {
    try {
      const answer = await this.ctx.clients.groups.listMembers({ groupId });
      this.ctx.store().members.set(groupId, answer.members.map(memberInfo));
      this.ctx.touch();
    } catch (err) {
      this.ctx.notify(`Could not list the members: ${errorClause(err)}`);
    }
  }
}
