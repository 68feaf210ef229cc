// A group's members, who is online, and (for owners and admins) invite and remove.

import { useEffect, useState } from "preact/hooks";

import type { Controller } from "../app/controller";

export function MembersPanel({
  controller,
  groupId,
  onClose,
  onGone,
}: {
  controller: Controller;
  groupId: string;
  onClose: () => void;
  /** The group was deleted from here. */
  onGone?: () => void;
}) {
  const store = controller.store!;
  const members = store.members.get(groupId);
  const group = store.groups.get(groupId);
  const [invitee, setInvitee] = useState("");
  const [editing, setEditing] = useState<{ name: string; description: string }>();
  const [result, setResult] = useState<string>();

  useEffect(() => {
    controller.groups.watch(groupId, true);
    return () => controller.groups.watch(groupId, false);
  }, [groupId]);

  const myRole = members?.find((m) => m.userId === store.me)?.role;
  const canManage = myRole === "owner" || myRole === "admin";
  const online = members?.filter((m) => m.online).length ?? 0;

  return (
    <aside class="panel" aria-label="Members">
      <header class="panel-header">
        <h2>Members</h2>
        <button type="button" class="icon" aria-label="Close members" onClick={onClose}>
          ×
        </button>
      </header>
      <p class="panel-note">
        Group id <code>{groupId}</code>
        {group?.policy === "invite-only" ? " · invite only" : " · anyone with the id can join"}
        {group?.history === "from-join" ? " · new members read from their joining" : " · new members read all history"}
      </p>
      {group?.description && !editing && <p class="group-description">{group.description}</p>}
      {canManage && group && !editing && (
        <p class="panel-note">
          <button type="button" class="link" onClick={() => setEditing({ name: group.name, description: group.description })}>
            Rename or describe
          </button>
        </p>
      )}
      {editing && (
        <form
          class="inline-form group-edit"
          aria-label="Group name and description"
          onSubmit={async (e) => {
            e.preventDefault();
            if (await controller.groups.update(groupId, editing.name, editing.description)) setEditing(undefined);
          }}
        >
          <label class="field">
            <span>Name</span>
            <input value={editing.name} onInput={(e) => setEditing({ ...editing, name: e.currentTarget.value })} />
          </label>
          <label class="field">
            <span>Description</span>
            <textarea rows={3} value={editing.description} onInput={(e) => setEditing({ ...editing, description: e.currentTarget.value })} />
          </label>
          <button type="submit">Save</button>
          <button type="button" class="link" onClick={() => setEditing(undefined)}>
            Cancel
          </button>
        </form>
      )}
      {members ? (
        <>
          <p class="panel-note">
            {members.length} members, {online} online
          </p>
          <ul class="members">
            {members.map((member) => (
              <li key={member.userId} class="member" data-member={member.userId}>
                <span class={`presence ${member.online ? "on" : "off"}`} aria-hidden="true" />
                <span class="member-name">
                  {member.displayName || member.userId}
                  {member.userId === store.me && " (you)"}
                </span>
                <span class="member-state">
                  {member.role !== "member" && <span class="tag">{member.role}</span>}
                  <span class="visually-hidden">{member.online ? "online" : "offline"}</span>
                </span>
                {myRole === "owner" && member.userId !== store.me && (
                  <button
                    type="button"
                    class="link"
                    aria-label={`Make ${member.userId} the owner`}
                    onClick={() => {
                      if (window.confirm(`Make ${member.userId} the owner? You stay as an admin.`)) {
                        void controller.groups.transfer(groupId, member.userId);
                      }
                    }}
                  >
                    Make owner
                  </button>
                )}
                {canManage && member.role !== "owner" && member.userId !== store.me && (
                  <button
                    type="button"
                    class="link danger"
                    aria-label={`Remove ${member.userId}`}
                    onClick={() => void controller.groups.remove(groupId, member.userId)}
                  >
                    Remove
                  </button>
                )}
              </li>
            ))}
          </ul>
        </>
      ) : (
        <p class="loading">Loading members…</p>
      )}
      {canManage && (
        <form
          class="inline-form"
          onSubmit={async (e) => {
            e.preventDefault();
            if (!invitee.trim()) return;
            const answer = await controller.groups.invite(groupId, invitee);
            if (answer) {
              setResult(answer);
              setInvitee("");
            }
          }}
        >
          <label class="field">
            <span>Invite a user</span>
            <input value={invitee} onInput={(e) => setInvitee(e.currentTarget.value)} placeholder="user id" />
          </label>
          <button type="submit">Invite</button>
          {result && (
            <p class="form-result" role="status">
              {result}
            </p>
          )}
        </form>
      )}
      {myRole === "owner" && (
        <p class="panel-note">
          <button
            type="button"
            class="danger"
            onClick={async () => {
              if (!window.confirm("Delete this group for everyone? Its history is erased; this cannot be undone.")) return;
              if (await controller.groups.disband(groupId)) onGone?.();
            }}
          >
            Delete group
          </button>
        </p>
      )}
    </aside>
  );
}
