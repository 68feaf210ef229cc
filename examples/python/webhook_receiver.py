#!/usr/bin/env python3
"""An app backend's webhook endpoint for Switchboard, verified with the
Standard Webhooks library (pip install standardwebhooks).

Switchboard POSTs a new message for a user with no device online to
SB_WEBHOOK_URL. This endpoint checks the signature and the timestamp, drops a
webhook id it already took (retries and redeliveries repeat ids), and prints
whom to wake: where a real app would call FCM, APNs or send mail.

    python3 webhook_receiver.py --port 8080 --secret whsec_... [--count N]

Exits 0 after taking COUNT webhooks (by default it runs until stopped).
"""
import argparse
import http.server
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True, help="SB_WEBHOOK_SECRET (whsec_...)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many webhooks (0: never)")
    args = parser.parse_args()
    hook = Webhook(args.secret)
    taken: set[str] = set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            try:
                event = hook.verify(body, dict(self.headers))
            except WebhookVerificationError as err:
                print(f"refused: {err}", flush=True)
                self.send_response(401)
                self.end_headers()
                return
            webhook_id = self.headers["webhook-id"]
            if webhook_id not in taken:
                taken.add(webhook_id)
                data = event["data"]
                print(f"wake {data['user_id']} ({data['reason']}): {data['sender']}: {data['text']}", flush=True)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on http://127.0.0.1:{args.port}/", flush=True)
    while not args.count or len(taken) < args.count:
        server.handle_request()
    return 0


if __name__ == "__main__":
    sys.exit(main())
