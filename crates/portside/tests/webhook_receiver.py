"""A webhook receiver for the end-to-end tests: it verifies every request with the Standard
Webhooks reference library (`standardwebhooks` on PyPI) against each secret it was given and
records what it got. Usage: webhook_receiver.py PORT (0 for a free one); it prints
"listening PORT" once it accepts requests.

Control (JSON):
  POST /control/secrets {"secrets": ["whsec_…", …]}   the secrets to verify with
  POST /control/answer  {"path": "/a", "status": 500}  how a path answers (200 by default;
                                                      status 0: never answer)
  GET  /control/received                              every request so far, in order
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

lock = threading.Lock()
secrets = []
answers = {}
received = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("content-length", "0")))

    def do_GET(self):
        if self.path == "/control/received":
            with lock:
                self.reply(200, json.dumps(received).encode())
        else:
            self.reply(404)

    def do_POST(self):
        data = self.body()
        if self.path == "/control/secrets":
            with lock:
                secrets[:] = json.loads(data)["secrets"]
            return self.reply(204)
        if self.path == "/control/answer":
            order = json.loads(data)
            with lock:
                answers[order["path"]] = order["status"]
            return self.reply(204)
        headers = {k: v for k, v in self.headers.items()}
        with lock:
            keys = list(secrets)
            status = answers.get(self.path, 200)
        verified = []
        event = None
        for i, secret in enumerate(keys):
            try:
                event = Webhook(secret).verify(data, headers)
                verified.append(i)
            except Exception:
                pass
        with lock:
            received.append(
                {
                    "path": self.path,
                    "id": headers.get("webhook-id") or headers.get("Webhook-Id"),
                    "type": event["type"] if event else None,
                    "data": event["data"] if event else None,
                    "verified_with": verified,
                    "answered": status,
                    "raw": data.decode(),
                    "headers": {
                        k: headers.get(k) or headers.get(k.title())
                        for k in ("webhook-id", "webhook-timestamp", "webhook-signature")
                    },
                    "at": time.time(),
                }
            )
        if status == 0:
            time.sleep(3600)
            return
        self.reply(status, b'{"received": true}')


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    print("listening", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
