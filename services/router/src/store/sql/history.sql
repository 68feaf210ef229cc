-- Message history (docs/STORAGE.md). Every table's primary key starts with
-- the shard key (the conversation, or the topic for a topic's threads) and
-- every statement on the message path names one: the shape Citus
-- distributes, and the shape an application-level shard map needs.
--
-- Version 1. Until the first release this file changes in place; after it,
-- a change is a new version and a migration.

-- One row: the schema version, and the epoch of this history (made with
-- it): clients hold seqs under it, and it changes only if the history is
-- lost, not when Redis is.
CREATE TABLE switchboard_schema (
  version integer NOT NULL,
  epoch   text    NOT NULL
);

-- One row per conversation: its last assigned seq. Appends move it in the
-- same transaction that stores the messages, so seqs have no holes and
-- never go backwards, whatever happens to Redis. `fence` is the membership
-- version (of the group or topic, kept in Redis) of the last membership
-- change written to this log: a send admitted under an older version is
-- refused (docs/STORAGE.md, "Who may write, across two stores").
CREATE TABLE conversations (
  shard_key    text   NOT NULL,
  conversation text   NOT NULL,
  head         bigint NOT NULL,
  fence        bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (shard_key, conversation)
);

CREATE TABLE messages (
  shard_key    text   NOT NULL,
  conversation text   NOT NULL,
  seq          bigint NOT NULL,
  sent_at      bigint NOT NULL,
  -- "<sender> <client message id>": a retried send finds its first answer here.
  retry_key    text,
  -- The protobuf Message, without the fields the store fills in on reads.
  body         bytea  NOT NULL,
  -- The words it is found by (router `search::words`, made there, never
  -- by a text search configuration here); NULL for a message with none (a
  -- system message, a tombstone). Rewritten with the body.
  words        tsvector,
  PRIMARY KEY (shard_key, conversation, seq)
);

-- Search within a reader's conversations: one GIN index over both the
-- conversation and the words (btree_gin), so the posting lists of a word
-- and of a conversation are intersected in the index, never by reading
-- every message of either.
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX messages_words ON messages USING gin (conversation, words)
  WHERE words IS NOT NULL;
-- A large conversation's searchable messages newest first: a common word
-- is found by walking back through them rather than by sorting all its
-- matches (router `PgHistory::search`).
CREATE INDEX messages_recent ON messages (shard_key, conversation, sent_at DESC, seq DESC)
  WHERE words IS NOT NULL;

CREATE UNIQUE INDEX messages_retry_key
  ON messages (shard_key, conversation, retry_key) WHERE retry_key IS NOT NULL;

-- One row per person, emoji and message. Beside the message, not in its
-- body: setting one is one keyed insert or delete, never a read and
-- rewrite of the message that a concurrent edit could race.
CREATE TABLE reactions (
  shard_key    text   NOT NULL,
  conversation text   NOT NULL,
  seq          bigint NOT NULL,
  user_id      text   NOT NULL,
  emoji        text   NOT NULL,
  at           bigint NOT NULL,
  PRIMARY KEY (shard_key, conversation, seq, user_id, emoji)
);
