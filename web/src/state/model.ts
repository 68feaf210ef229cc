// The page's own types. Generated protobuf types stop at the edge
// (`api/convert.ts`): seqs become numbers, enums become words, so the state
// logic and its tests need no protobuf.

export type ConversationKind = "direct" | "group" | "topic-thread";

/** Identifies a topic thread from either side (the proto's TopicTag). */
export interface TopicRef {
  topicId: string;
  topicName: string;
  ownerId: string;
  contactId: string;
  /** Set on the copies of one broadcast. */
  broadcastId: string;
  /** Copy and resend: the message this one was copied from. */
  forwardedFrom: string;
}

export interface SystemNote {
  kind: string;
  userId: string;
  actorId: string;
  /** The message the note is about ("message-deleted"). */
  messageId?: string;
}

/** The message a reply answers, as it reads now. */
export interface Quote {
  messageId: string;
  sender: string;
  /** Its text's start; empty when deleted. */
  excerpt: string;
  deleted: boolean;
}

export interface ChatMessage {
  conversationId: string;
  seq: number;
  messageId: string;
  /** Empty for system messages. */
  sender: string;
  sentAtMs: number;
  text: string;
  clientMsgId: string;
  system?: SystemNote;
  topic?: TopicRef;
  /** The text is gone from the server (deleted for everyone, or its sender's account was): a tombstone. */
  deleted?: boolean;
  /** When its sender last edited it; `text` is the latest. */
  editedAtMs?: number;
  /** The message this one answers. */
  replyTo?: Quote;
  /** In a group: the members it names as @user. */
  mentions?: string[];
  /** One per emoji, in the order each was first used (as the last History read said). */
  reactions?: Reaction[];
}

export interface Reaction {
  emoji: string;
  count: number;
  /** The reader is among them. */
  mine: boolean;
}

/** One message a search found, its text in pieces that say what matched. */
export interface SearchHit {
  message: ChatMessage;
  pieces: { text: string; matched: boolean }[];
}

/** A conversation's summary, as ListConversations and ConversationChanged give it. */
export interface ConversationInfo {
  id: string;
  kind: ConversationKind;
  title: string;
  headSeq: number;
  readSeq: number;
  unread: number;
  lastMessage?: ChatMessage;
  peerId: string;
  groupId: string;
  topic?: TopicRef;
  muted: boolean;
  closed: boolean;
  /** Direct: someone not among the reader's contacts wrote; not answered or accepted yet. */
  request?: boolean;
}

/** `not-mutual`: still bound, but one of the two removed the other as a contact. */
export type ContactState = "bound" | "muted" | "not-mutual" | "left" | "removed";

export interface TopicContactInfo {
  userId: string;
  displayName: string;
  state: ContactState;
  conversationId: string;
}

export interface TopicInfo {
  id: string;
  name: string;
  ownerId: string;
  createdAtMs: number;
  contacts: TopicContactInfo[];
  deleted: boolean;
}

export type GroupPolicy = "open" | "invite-only";

/** What a group's new members can read: everything, or from their joining. */
export type GroupHistory = "all" | "from-join";

export interface GroupInfo {
  id: string;
  name: string;
  ownerId: string;
  policy: GroupPolicy;
  history: GroupHistory;
  memberCount: number;
  conversationId: string;
  description: string;
}

export type MemberRole = "member" | "admin" | "owner";

export interface MemberInfo {
  userId: string;
  displayName: string;
  role: MemberRole;
  online: boolean;
}

export interface ContactInfo {
  userId: string;
  displayName: string;
  mutual: boolean;
  online: boolean;
}

/** Per contact, for one topic message: the owner's view of its fate. */
export interface CopyStatus {
  delivered: boolean;
  read: boolean;
  replied: boolean;
}

export type GapReason = "epoch-changed" | "cursor-ahead" | "truncated" | "unavailable" | "unknown";

export interface GapNotice {
  conversationId: string;
  fromSeq: number;
  toSeq: number;
  reason: GapReason;
  detail: string;
}
