"""webapp.server.hangups on real sockets: a waiting claim hears that its worker hung up."""

from __future__ import annotations

import socket
import threading

from webapp.server import hangups


def test_a_half_close_is_reported_once_and_a_forgotten_socket_is_not():
    server_end, worker_end = socket.socketpair()
    other_server_end, other_worker_end = socket.socketpair()
    heard: list[str] = []
    reported = threading.Event()

    def on_hang_up() -> None:
        heard.append("hung up")
        reported.set()

    with hangups.watching(other_server_end, lambda: heard.append("forgotten")):
        pass
    with hangups.watching(server_end, on_hang_up):
        worker_end.shutdown(socket.SHUT_WR)
        other_worker_end.shutdown(socket.SHUT_WR)
        assert reported.wait(2)
    assert heard == ["hung up"]
    for end in (server_end, worker_end, other_server_end, other_worker_end):
        end.close()


def test_a_callback_that_raises_does_not_stop_the_watching():
    first_server, first_worker = socket.socketpair()
    second_server, second_worker = socket.socketpair()

    def broken() -> None:
        raise RuntimeError("a bug in one claim's callback")

    reported = threading.Event()
    with hangups.watching(first_server, broken):
        first_worker.shutdown(socket.SHUT_WR)
        with hangups.watching(second_server, reported.set):
            second_worker.shutdown(socket.SHUT_WR)
            assert reported.wait(5)
    for end in (first_server, first_worker, second_server, second_worker):
        end.close()
