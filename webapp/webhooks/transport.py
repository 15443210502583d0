"""One webhook POST, to the address that was checked, within one deadline.

requests resolves the name again when it connects, so a name that passed the
public-address check could point at 127.0.0.1 or the cloud metadata service a
moment later (DNS rebinding). Here the connection goes to the checked address;
the name is kept for the Host header and for TLS (SNI and the certificate check).

requests' timeouts are per socket operation: a receiver trickling a byte every few
seconds would hold a sender, and its lease, for hours. A timer ends the exchange at
the deadline whatever the receiver does; the name's lookup counts against it too.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.client import HTTPException
from urllib.parse import urlsplit

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError

from .addresses import resolve


class SendFailed(Exception):
    """No answer came back; the message says why."""


@dataclass(frozen=True)
class Reply:
    status_code: int
    location: str | None
    excerpt: bytes


def post(
    url: str, body: bytes, headers: dict[str, str], *, timeout_s: float, allow_private: bool, excerpt_bytes: int
) -> Reply:
    """POST `body` and read at most `excerpt_bytes` of the answer; raises AddressRefused or SendFailed."""
    parts = urlsplit(url)
    began = time.monotonic()
    address = resolve(url, allow_private=allow_private, timeout_s=timeout_s)
    remaining_s = timeout_s - (time.monotonic() - began)  # the lookup counts against the deadline too
    if remaining_s <= 0:
        raise SendFailed(f"no complete answer within {timeout_s:g} s")
    connection: HTTPConnection
    if parts.scheme == "https":
        connection = HTTPSConnection(
            address,
            parts.port or 443,
            timeout=timeout_s,
            server_hostname=parts.hostname,
            ssl_context=ssl.create_default_context(),
        )
    else:
        connection = HTTPConnection(address, parts.port or 80, timeout=timeout_s)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cut = threading.Event()
    connected: list[socket.socket] = []
    deadline = threading.Timer(remaining_s, _cut, (connection, connected, cut))
    deadline.daemon = True
    deadline.start()
    try:
        connection.request("POST", target, body=body, headers={**headers, "host": parts.netloc}, preload_content=False)
        if connection.sock is not None:
            # Kept for the cut: an answer that will close the connection (HTTP/1.0, `Connection:
            # close`) makes http.client drop `connection.sock` while the response still reads it.
            connected.append(connection.sock)
        response = connection.getresponse()
        excerpt = response.read(excerpt_bytes, decode_content=True)
    except (OSError, HTTPException, HTTPError, ValueError) as failure:
        if cut.is_set():
            raise SendFailed(f"no complete answer within {timeout_s:g} s") from None
        raise SendFailed(f"{type(failure).__name__}: {failure}"[:1000]) from None
    finally:
        deadline.cancel()
        connection.close()
    if cut.is_set():  # a cut can also read as an answer that merely ended early
        raise SendFailed(f"no complete answer within {timeout_s:g} s")
    return Reply(response.status, response.headers.get("location"), excerpt)


def _cut(connection: HTTPConnection, connected: list[socket.socket], cut: threading.Event) -> None:
    """Unblock whatever the sending thread is waiting for on this connection."""
    cut.set()
    for sock in {id(sock): sock for sock in [connection.sock, *connected] if sock is not None}.values():
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed
