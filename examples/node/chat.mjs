#!/usr/bin/env node
// A small Switchboard client in Node, loading proto/ with @grpc/proto-loader
// (the usual way in Node: the stubs are made from the .proto files at start).
//
// Logs in as SENDER and RECIPIENT (registering them first if they are new),
// opens RECIPIENT's one stream, sends one message from SENDER, waits for it
// to arrive on the stream, then pages the conversation's history.
//
//   npm ci
//   node chat.mjs --server http://127.0.0.1:7300 alice bob "hello from node"
//
// An https:// server is reached over TLS (--ca names a private CA's PEM file).
// Exits 0 once the message has arrived live and is in history.

import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const PROTO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../proto");
const PASSWORD = "example password, not for real use";

const { values: flags, positionals } = parseArgs({
  options: { server: { type: "string", default: "http://127.0.0.1:7300" }, ca: { type: "string" } },
  allowPositionals: true,
});
const [senderId, recipientId, text] = positionals;
if (!text) {
  console.error("usage: node chat.mjs [--server URL] [--ca PEM] SENDER RECIPIENT TEXT");
  process.exit(2);
}

const definition = protoLoader.loadSync(["switchboard/v1/switchboard.proto", "switchboard/v1/topics.proto"], {
  includeDirs: [PROTO],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(definition).switchboard.v1;

function target(server) {
  if (server.startsWith("https://")) {
    const root = flags.ca ? readFileSync(flags.ca) : null;
    return [server.slice("https://".length), grpc.credentials.createSsl(root)];
  }
  if (server.startsWith("http://")) return [server.slice("http://".length), grpc.credentials.createInsecure()];
  throw new Error(`${server}: give http://host:port, or https://host:port for TLS`);
}

/** A unary call as a promise. */
function call(client, method, request, metadata = new grpc.Metadata()) {
  return new Promise((resolve, reject) => {
    client[method](request, metadata, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

function bearer(token) {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/** Registers `user` if new, logs in; returns the call metadata to use. */
async function logIn(accounts, user) {
  try {
    await call(accounts, "Register", { user_id: user, password: PASSWORD, display_name: user });
  } catch (err) {
    if (err.code !== grpc.status.ALREADY_EXISTS) throw err;
  }
  const login = await call(accounts, "Login", { user_id: user, password: PASSWORD, device_id: "node-example" });
  console.log(`logged in as ${login.user.user_id} (session ${login.session_id})`);
  return bearer(login.token);
}

/** The next event of `stream` that `wanted` accepts. */
function next(stream, wanted) {
  return new Promise((resolve, reject) => {
    const onData = (event) => {
      if (!wanted(event)) return;
      stream.off("data", onData);
      resolve(event);
    };
    stream.on("data", onData);
    stream.once("error", reject);
    stream.once("end", () => reject(new Error("the stream ended")));
  });
}

async function main() {
  const [address, credentials] = target(flags.server);
  const accounts = new v1.AccountService(address, credentials);
  const chat = new v1.ChatService(address, credentials);
  const sender = await logIn(accounts, senderId);
  const recipient = await logIn(accounts, recipientId);

  // The recipient's one stream: every conversation's events. Wait until it
  // has caught up, so the message below arrives live.
  const stream = chat.Subscribe({}, recipient);
  stream.on("error", () => {}); // cancelled at the end, on purpose
  await next(stream, (event) => event.kind === "synced");

  const sent = await call(chat, "Send", { user_id: recipientId, client_msg_id: randomUUID(), text }, sender);
  console.log(`sent #${sent.seq} in ${sent.conversation_id}`);
  const arrived = await next(stream, (event) => event.kind === "message" && event.message.message_id === sent.message_id);
  console.log(`received live: ${arrived.message.sender}: ${arrived.message.text}`);
  stream.cancel();

  const page = await call(chat, "History", { conversation_id: sent.conversation_id, limit: 50 }, recipient);
  console.log(`history of ${sent.conversation_id} (${page.messages.length} messages, more: ${page.has_more}):`);
  for (const message of page.messages) console.log(`  #${message.seq} ${message.sender}: ${message.text}`);
  accounts.close();
  chat.close();
  if (!page.messages.some((m) => m.message_id === sent.message_id)) {
    console.error("the message is missing from history");
    process.exitCode = 1;
  }
}

main().catch((err) => {
  const code = typeof err.code === "number" ? Object.keys(grpc.status).find((k) => grpc.status[k] === err.code) : undefined;
  console.error(`error: ${code ?? "ERROR"}: ${err.details ?? err.message}`);
  process.exit(1);
});
