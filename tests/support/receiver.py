"""A real webhook receiver on a loopback port: a threaded http.server that records every request.

It can answer slowly (to catch a sender mid-batch), answer an error, or be stopped and
started again on the same port (a receiver that is down, then back).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.support.server import free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str) -> Any:
        """The parsed body, after the standardwebhooks library checked its signature (raises otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[Received] = []
        self.started_requests = 0
        self.status = 200
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with receiver._lock:
                    receiver.started_requests += 1
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                status = receiver.status
                if 200 <= status < 300:
                    with receiver._lock:
                        receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok " + b"x" * 3000)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self, secret: str) -> list[dict[str, Any]]:
        """Every accepted request's body, each signature verified."""
        with self._lock:
            return [item.verified(secret) for item in self.received]

    def ids(self) -> list[str]:
        with self._lock:
            return [item.webhook_id for item in self.received]

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


def as_json(item: Received) -> Any:
    return json.loads(item.body)
