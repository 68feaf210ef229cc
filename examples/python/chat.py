#!/usr/bin/env python3
"""A small Switchboard client in Python, on stubs generated from proto/.

Logs in as SENDER and RECIPIENT (registering them first if they are new),
opens RECIPIENT's one stream, sends one message from SENDER, waits for it to
arrive on the stream, then pages the conversation's history.

    ./generate.sh
    python3 chat.py --server http://127.0.0.1:7300 alice bob "hello from python"

With --offline the recipient opens no stream (it adds the sender as a contact
instead, so the message is not a request): the server's webhook, if one is
configured, tells the app to wake them (see webhook_receiver.py).

An https:// server is reached over TLS (--ca names a private CA's PEM file).
Exits 0 once the message has arrived live and is in history.
"""

import argparse
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from switchboard.v1 import switchboard_pb2 as pb  # noqa: E402
from switchboard.v1 import switchboard_pb2_grpc as rpc  # noqa: E402

PASSWORD = "example password, not for real use"


def channel(server: str, ca: str | None) -> grpc.Channel:
    if server.startswith("https://"):
        root = open(ca, "rb").read() if ca else None
        return grpc.secure_channel(server.removeprefix("https://"), grpc.ssl_channel_credentials(root))
    if server.startswith("http://"):
        return grpc.insecure_channel(server.removeprefix("http://"))
    sys.exit(f"{server!r}: give http://host:port, or https://host:port for TLS")


def log_in(accounts: rpc.AccountServiceStub, user: str) -> list[tuple[str, str]]:
    """Registers `user` if new, logs in; returns the call metadata to use."""
    try:
        accounts.Register(pb.RegisterRequest(user_id=user, password=PASSWORD, display_name=user.title()))
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
    login = accounts.Login(pb.LoginRequest(user_id=user, password=PASSWORD, device_id="python-example"))
    print(f"logged in as {login.user.user_id} (session {login.session_id})")
    return [("authorization", f"Bearer {login.token}")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="http://127.0.0.1:7300")
    parser.add_argument("--ca", help="PEM file of a CA to trust for https://")
    parser.add_argument("sender")
    parser.add_argument("recipient")
    parser.add_argument("text")
    parser.add_argument("--offline", action="store_true", help="the recipient stays offline")
    args = parser.parse_args()

    with channel(args.server, args.ca) as ch:
        accounts = rpc.AccountServiceStub(ch)
        chat = rpc.ChatServiceStub(ch)
        sender = log_in(accounts, args.sender)
        recipient = log_in(accounts, args.recipient)

        # The recipient's one stream: every conversation's events. Wait until
        # it has caught up, so the message below arrives live.
        if args.offline:
            contacts = rpc.ContactServiceStub(ch)
            contacts.AddContact(pb.AddContactRequest(user_id=args.sender), metadata=recipient)
            stream = None
        else:
            stream = chat.Subscribe(pb.SubscribeRequest(), metadata=recipient, timeout=30)
            for event in stream:
                if event.WhichOneof("kind") == "synced":
                    break

        sent = chat.Send(
            pb.SendRequest(user_id=args.recipient, client_msg_id=str(uuid.uuid4()), text=args.text),
            metadata=sender,
        )
        print(f"sent #{sent.seq} in {sent.conversation_id}")

        if stream is not None:
            for event in stream:
                if event.WhichOneof("kind") == "message" and event.message.message_id == sent.message_id:
                    print(f"received live: {event.message.sender}: {event.message.text}")
                    break
            stream.cancel()

        page = chat.History(pb.HistoryRequest(conversation_id=sent.conversation_id, limit=50), metadata=recipient)
        print(f"history of {sent.conversation_id} ({len(page.messages)} messages, more: {page.has_more}):")
        for message in page.messages:
            print(f"  #{message.seq} {message.sender}: {message.text}")
        if not any(m.message_id == sent.message_id for m in page.messages):
            print("the message is missing from history", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except grpc.RpcError as err:
        print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
        sys.exit(1)
