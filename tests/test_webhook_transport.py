"""The webhook sender's connection: to the address that was checked (a name re-pointed
at loopback after the check is never followed), TLS verified against the name, and one
deadline however slowly a receiver answers. Real sockets on loopback throughout."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

from webapp import jobs
from webapp.webhooks import delivery, events, transport
from webapp.webhooks.addresses import AddressRefused

from tests.conftest import test_config
from tests.support.receiver import Receiver

REAL_GETADDRINFO = socket.getaddrinfo
# A public address (example.com's), unreachable from this sandboxed machine: a delivery
# that connects to it fails, one that connects to loopback instead reaches the receiver.
PUBLIC_ADDRESS = "93.184.215.14"


def resolving(monkeypatch, name: str, answers: list[str]) -> list[str]:
    """Make `name` resolve to each of `answers` in turn (the last one from then on), as a
    hostile DNS server with a zero TTL would; returns the addresses handed out."""
    handed_out: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != name:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        address = answers[min(len(handed_out), len(answers) - 1)]
        handed_out.append(address)
        return REAL_GETADDRINFO(address, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return handed_out


@pytest.fixture
def app_config(database_url):
    return test_config(database_url, JOBWARDEN_WEBHOOK_TIMEOUT_S=1.0)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


def finish_a_job() -> None:
    job = jobs.create_job(type="demo")
    claimed = jobs.claim_jobs("w1")[0]
    jobs.complete_job(job.id, jobs.start_job(job.id, claimed.lease_token).lease_token, result={})


def test_a_name_re_pointed_at_loopback_after_the_check_is_never_connected_to(app, client, monkeypatch, receiver):
    """DNS rebinding: the name is public when added and when checked before sending, then
    loopback. The sender connects to the address it checked, so the receiver on loopback
    (standing in for an internal service) gets nothing."""
    handed_out = resolving(monkeypatch, "hooks.example", [PUBLIC_ADDRESS, PUBLIC_ADDRESS, "127.0.0.1"])
    url = f"http://hooks.example:{receiver.port}/hook"
    added = client.post("/api/webhooks", json={"url": url, "events": [events.JOB_COMPLETED]})
    assert added.status_code == 201, added.get_json()
    finish_a_job()

    delivery.deliver_until_idle()

    assert receiver.started_requests == 0
    assert handed_out == [PUBLIC_ADDRESS, PUBLIC_ADDRESS]  # added, then checked once and connected to
    log = client.get(f"/api/webhooks/{added.get_json()['id']}/deliveries").get_json()["deliveries"]
    tried = log[1]  # newest first: the next attempt, then this one
    assert tried["outcome"] == "retrying" and tried["status_code"] is None and tried["error"]


def test_a_loopback_answer_at_delivery_time_is_refused_before_connecting(monkeypatch, receiver):
    resolving(monkeypatch, "hooks.example", ["127.0.0.1"])
    with pytest.raises(AddressRefused, match="hooks.example resolves to 127.0.0.1, a loopback address"):
        transport.post(
            f"http://hooks.example:{receiver.port}/hook",
            b"{}",
            {},
            timeout_s=1,
            allow_private=False,
            excerpt_bytes=1024,
        )
    assert receiver.started_requests == 0


TRICKLING_HEADER = b"HTTP/1.1 200 OK\r\nX-Slow: "
# Answers that will close the connection: http.client then drops the connection's socket
# (the response reads through its own file), and a cut that looked there found nothing.
TRICKLING_BODY_HTTP_1_0 = b"HTTP/1.0 200 OK\r\n\r\n"
TRICKLING_BODY_CONNECTION_CLOSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"


@pytest.fixture(
    params=[TRICKLING_HEADER, TRICKLING_BODY_HTTP_1_0, TRICKLING_BODY_CONNECTION_CLOSE],
    ids=["header", "HTTP/1.0 body", "Connection: close body"],
)
def trickling_receiver(request) -> Iterator[int]:
    """A receiver that reads the request, answers the start of an answer, then one byte
    (of a header or of the body) every 0.2 s, for ever."""
    head: bytes = request.param
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        with connection:
            connection.sendall(head)
            while not stop.is_set():
                try:
                    connection.sendall(b"y")
                except OSError:
                    return  # the sender hung up
                time.sleep(0.2)

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_deadline(trickling_receiver):
    """Each byte comes well within a per-read timeout, so only a deadline for the whole
    exchange stops it; without one the sender (and its lease) is held for ever."""
    outcome: list[object] = []

    def send() -> None:
        try:
            transport.post(
                f"http://127.0.0.1:{trickling_receiver}/hook",
                b"{}",
                {},
                timeout_s=1,
                allow_private=True,
                excerpt_bytes=1024,
            )
        except transport.SendFailed as failure:
            outcome.append(failure)

    began = time.monotonic()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    sender.join(timeout=10)
    assert not sender.is_alive(), "the sender was still reading after 10 s"
    assert time.monotonic() - began < 5  # the 1 s deadline, plus a loaded machine's slack
    assert [str(failure) for failure in outcome] == ["no complete answer within 1 s"]


@pytest.fixture
def authority(tmp_path, monkeypatch) -> trustme.CA:
    """A certificate authority the process trusts (through SSL_CERT_FILE, as an operator's
    private CA would be), and nothing else changed."""
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return ca


def tls_receiver(ca: trustme.CA, name: str) -> tuple[ThreadingHTTPServer, list[str]]:
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            hosts.append(self.headers["host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hosts


def test_tls_is_verified_against_the_name_though_the_connection_goes_to_the_checked_address(authority, monkeypatch):
    resolving(monkeypatch, "hooks.example", ["127.0.0.1"])
    server, hosts = tls_receiver(authority, "hooks.example")
    port = server.server_address[1]
    try:
        reply = transport.post(
            f"https://hooks.example:{port}/hook?x=1",
            b"{}",
            {"content-type": "application/json"},
            timeout_s=5,
            allow_private=True,
            excerpt_bytes=1024,
        )
        assert reply.status_code == 204
        assert hosts == [f"hooks.example:{port}"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_certificate_for_another_name_is_refused(authority, monkeypatch):
    resolving(monkeypatch, "hooks.example", ["127.0.0.1"])
    server, hosts = tls_receiver(authority, "other.example")
    try:
        with pytest.raises(transport.SendFailed, match="certificate"):
            transport.post(
                f"https://hooks.example:{server.server_address[1]}/hook",
                b"{}",
                {},
                timeout_s=5,
                allow_private=True,
                excerpt_bytes=1024,
            )
        assert hosts == []
    finally:
        server.shutdown()
        server.server_close()


def test_a_resolver_that_never_answers_fails_the_delivery_within_its_deadline(monkeypatch):
    """getaddrinfo has no timeout: a stalled resolver once held a sender, and its lease, for
    as long as it stalled."""
    released = threading.Event()

    def stalled_getaddrinfo(host, port, *args, **kwargs):
        if host != "stalled.example":
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        released.wait(30)
        raise socket.gaierror("gave up")

    monkeypatch.setattr(socket, "getaddrinfo", stalled_getaddrinfo)
    began = time.monotonic()
    try:
        with pytest.raises(AddressRefused, match="stalled.example: no answer within 0.5 s"):
            transport.post(
                "http://stalled.example/hook", b"{}", {}, timeout_s=0.5, allow_private=True, excerpt_bytes=10
            )
        assert time.monotonic() - began < 2
    finally:
        released.set()
