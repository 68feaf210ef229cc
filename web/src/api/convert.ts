// The edge between generated protobuf types and the page's own: seqs and
// times become numbers (they stay far below 2^53), enums become words.

import {
  ConversationKind as PbConversationKind,
  Gap_Reason,
  HistoryVisibility,
  JoinPolicy,
  Role,
  SystemEvent_Kind,
  type Contact,
  type Conversation,
  type Gap,
  type Group,
  type Member,
  type Message,
  type Reaction as PbReaction,
  type TopicTag,
} from "../gen/switchboard/v1/switchboard_pb";
import { TopicContact_State, type Topic } from "../gen/switchboard/v1/topics_pb";
import type {
  ChatMessage,
  ContactInfo,
  ContactState,
  ConversationInfo,
  ConversationKind,
  GapNotice,
  GapReason,
  GroupInfo,
  MemberInfo,
  MemberRole,
  Reaction,
  TopicInfo,
  TopicRef,
} from "../state/model";

const num = (value: bigint | number): number => Number(value);

export function topicRef(tag: TopicTag | undefined): TopicRef | undefined {
  if (!tag || !tag.topicId) return undefined;
  return {
    topicId: tag.topicId,
    topicName: tag.topicName,
    ownerId: tag.ownerId,
    contactId: tag.contactId,
    broadcastId: tag.broadcastId,
    forwardedFrom: tag.forwardedFrom,
  };
}

const systemKinds: Record<SystemEvent_Kind, string> = {
  [SystemEvent_Kind.UNSPECIFIED]: "other",
  [SystemEvent_Kind.GROUP_CREATED]: "group-created",
  [SystemEvent_Kind.MEMBER_JOINED]: "member-joined",
  [SystemEvent_Kind.MEMBER_LEFT]: "member-left",
  [SystemEvent_Kind.MEMBER_REMOVED]: "member-removed",
  [SystemEvent_Kind.ROLE_CHANGED]: "role-changed",
  [SystemEvent_Kind.TOPIC_RENAMED]: "topic-renamed",
  [SystemEvent_Kind.CONTACT_REMOVED_FROM_TOPIC]: "contact-removed",
  [SystemEvent_Kind.CONTACT_LEFT_TOPIC]: "contact-left",
  [SystemEvent_Kind.OWNERSHIP_TRANSFERRED]: "ownership-transferred",
  [SystemEvent_Kind.MESSAGE_DELETED]: "message-deleted",
  [SystemEvent_Kind.MESSAGE_EDITED]: "message-edited",
  [SystemEvent_Kind.GROUP_UPDATED]: "group-updated",
  [SystemEvent_Kind.REACTIONS_CHANGED]: "reactions-changed",
};

export function reaction(r: PbReaction): Reaction {
  return { emoji: r.emoji, count: r.count, mine: r.mine };
}

export function chatMessage(message: Message): ChatMessage {
  return {
    conversationId: message.conversationId,
    seq: num(message.seq),
    messageId: message.messageId,
    sender: message.sender,
    sentAtMs: num(message.sentAtMs),
    text: message.text,
    clientMsgId: message.clientMsgId,
    system: message.system
      ? {
          kind: systemKinds[message.system.kind] ?? "other",
          userId: message.system.userId,
          actorId: message.system.actorId,
          messageId: message.system.messageId || undefined,
        }
      : undefined,
    topic: topicRef(message.topic),
    deleted: message.deleted || undefined,
    editedAtMs: num(message.editedAtMs) || undefined,
    mentions: message.mentions.length ? [...message.mentions] : undefined,
    reactions: message.reactions.length ? message.reactions.map(reaction) : undefined,
    replyTo: message.replyTo
      ? {
          messageId: message.replyTo.messageId,
          sender: message.replyTo.sender,
          excerpt: message.replyTo.excerpt,
          deleted: message.replyTo.deleted,
        }
      : undefined,
  };
}

function conversationKind(kind: PbConversationKind): ConversationKind {
  switch (kind) {
    case PbConversationKind.GROUP:
      return "group";
    case PbConversationKind.TOPIC_THREAD:
      return "topic-thread";
    default:
      return "direct";
  }
}

export function conversationInfo(conversation: Conversation): ConversationInfo {
  return {
    id: conversation.conversationId,
    kind: conversationKind(conversation.kind),
    title: conversation.title,
    headSeq: num(conversation.headSeq),
    readSeq: num(conversation.readSeq),
    unread: num(conversation.unread),
    lastMessage: conversation.lastMessage ? chatMessage(conversation.lastMessage) : undefined,
    peerId: conversation.peerId,
    groupId: conversation.groupId,
    topic: topicRef(conversation.topic),
    muted: conversation.muted,
    closed: conversation.closed,
    request: conversation.request || undefined,
  };
}

export function groupInfo(group: Group): GroupInfo {
  return {
    id: group.groupId,
    name: group.name,
    ownerId: group.ownerId,
    policy: group.policy === JoinPolicy.INVITE_ONLY ? "invite-only" : "open",
    history: group.history === HistoryVisibility.FROM_JOIN ? "from-join" : "all",
    memberCount: group.memberCount,
    conversationId: group.conversationId,
    description: group.description,
  };
}

const roles: Record<Role, MemberRole> = {
  [Role.UNSPECIFIED]: "member",
  [Role.MEMBER]: "member",
  [Role.ADMIN]: "admin",
  [Role.OWNER]: "owner",
};

export function memberInfo(member: Member): MemberInfo {
  return {
    userId: member.userId,
    displayName: member.displayName,
    role: roles[member.role] ?? "member",
    online: member.online,
  };
}

export function contactInfo(contact: Contact): ContactInfo {
  return {
    userId: contact.userId,
    displayName: contact.displayName,
    mutual: contact.mutual,
    online: contact.online,
  };
}

const contactStates: Record<TopicContact_State, ContactState> = {
  [TopicContact_State.UNSPECIFIED]: "bound",
  [TopicContact_State.BOUND]: "bound",
  [TopicContact_State.MUTED]: "muted",
  [TopicContact_State.LEFT]: "left",
  [TopicContact_State.REMOVED]: "removed",
  [TopicContact_State.NOT_MUTUAL]: "not-mutual",
};

export function topicInfo(topic: Topic): TopicInfo {
  return {
    id: topic.topicId,
    name: topic.name,
    ownerId: topic.ownerId,
    createdAtMs: num(topic.createdAtMs),
    deleted: topic.deleted,
    contacts: topic.contacts.map((c) => ({
      userId: c.userId,
      displayName: c.displayName,
      state: contactStates[c.state] ?? "bound",
      conversationId: c.conversationId,
    })),
  };
}

const gapReasons: Record<Gap_Reason, GapReason> = {
  [Gap_Reason.UNSPECIFIED]: "unknown",
  [Gap_Reason.EPOCH_CHANGED]: "epoch-changed",
  [Gap_Reason.CURSOR_AHEAD]: "cursor-ahead",
  [Gap_Reason.TRUNCATED]: "truncated",
  [Gap_Reason.UNAVAILABLE]: "unavailable",
};

export function gapNotice(gap: Gap): GapNotice {
  return {
    conversationId: gap.conversationId,
    fromSeq: num(gap.fromSeq),
    toSeq: num(gap.toSeq),
    reason: gapReasons[gap.reason] ?? "unknown",
    detail: gap.detail,
  };
}
