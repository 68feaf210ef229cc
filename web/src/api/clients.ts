// gRPC-Web clients of the gateway that served the page (same origin, no
// CORS). Every call but Register and Login carries the session's bearer
// token, added by one interceptor.

import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import {
  AccountService,
  ChatService,
  ContactService,
  GroupService,
} from "../gen/switchboard/v1/switchboard_pb";
import { TopicService } from "../gen/switchboard/v1/topics_pb";

export interface Clients {
  accounts: Client<typeof AccountService>;
  chat: Client<typeof ChatService>;
  contacts: Client<typeof ContactService>;
  groups: Client<typeof GroupService>;
  topics: Client<typeof TopicService>;
}

/** Deadline of one unary call; the stream has none (it lives as long as the page). */
export const CALL_TIMEOUT_MS = 10_000;

export function createClients(baseUrl: string, token: () => string | undefined): Clients {
  const bearer: Interceptor = (next) => (request) => {
    const value = token();
    if (value) request.header.set("authorization", `Bearer ${value}`);
    return next(request);
  };
  const transport = createGrpcWebTransport({
    baseUrl,
    useBinaryFormat: true,
    interceptors: [bearer],
    defaultTimeoutMs: CALL_TIMEOUT_MS,
  });
  return {
    accounts: createClient(AccountService, transport),
    chat: createClient(ChatService, transport),
    contacts: createClient(ContactService, transport),
    groups: createClient(GroupService, transport),
    topics: createClient(TopicService, transport),
  };
}
