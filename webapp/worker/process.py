"""External commands: run without a shell in their own process group, keep the
last 64 KB of their output, and stop the whole group (children and
grandchildren) with SIGTERM, then SIGKILL after a grace period.

A process that starts its own session (setsid, double fork into a daemon)
leaves the group and is out of our reach; everything else is stopped.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
from typing import Any, Mapping, Sequence

from ..limits import OUTPUT_TAIL_BYTES

log = logging.getLogger(__name__)

_POLL_S = 0.02


class OutputTail:
    """The last `limit` bytes written, safe to write from several threads.

    `version` grows with every write, so a heartbeat can tell whether there is
    new output to send.
    """

    def __init__(self, limit: int = OUTPUT_TAIL_BYTES):
        self.limit = limit
        self.version = 0
        self._data = bytearray()
        self._lock = threading.Lock()

    def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        if not data:
            return
        with self._lock:
            self._data += data[-self.limit:]
            if len(self._data) > self.limit:
                del self._data[: len(self._data) - self.limit]
            self.version += 1

    def text(self) -> str:
        """The kept bytes as text; a character cut in two by the limit is dropped."""
        with self._lock:
            data = bytes(self._data)
        if len(data) == self.limit:
            start = 0
            while start < min(4, len(data)) and (data[start] & 0xC0) == 0x80:
                start += 1
            data = data[start:]
        return data.decode("utf-8", "replace")


def signal_name(returncode: int) -> str | None:
    """'SIGKILL' for a process killed by signal 9 (returncode -9), else None."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


class GroupProcess:
    """One external command in its own process group.

    `wait()` returns the leader's exit code once the leader and every other
    member of its group are gone: members left behind by a leader that exited
    are stopped the same way as on cancel (SIGTERM, SIGKILL after the grace).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        output: OutputTail,
        kill_grace: float = 10.0,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ):
        if not argv:
            raise ValueError("an external command needs at least a program name")
        self.argv = [str(arg) for arg in argv]
        self.output = output
        self.kill_grace = kill_grace
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._kill_timer: threading.Timer | None = None
        self._terminating = threading.Lock()
        self._terminated = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session and process group: pgid == pid
            close_fds=True,
            env=self.env,
            cwd=self.cwd,
        )
        self._reader = threading.Thread(
            target=self._read, name=f"output-{self.process.pid}", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        assert self.process and self.process.stdout
        fd = self.process.stdout.fileno()
        try:
            while chunk := os.read(fd, 65536):
                self.output.write(chunk)
        except OSError:
            pass
        finally:
            self.process.stdout.close()

    def wait(self) -> int:
        """Block until the command and its whole group are gone; the leader's exit code."""
        assert self.process is not None
        returncode = self.process.wait()
        if self.group_alive():
            log.info("command %s left processes in its group; stopping them", self.argv[0])
            self.terminate()
            self._wait_group_gone()
        if self._kill_timer:
            self._kill_timer.cancel()
        if self._reader:
            # A member that escaped the group may still hold the pipe open; don't wait on it.
            self._reader.join(timeout=1.0)
        return returncode

    def group_alive(self) -> bool:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _wait_group_gone(self) -> None:
        while self.group_alive():
            time.sleep(_POLL_S)

    def terminate(self) -> None:
        """SIGTERM to the whole group now; SIGKILL to it after the grace unless it is gone."""
        with self._terminating:
            first = not self._terminated
            self._terminated = True
        self._signal(signal.SIGTERM)
        if first:
            self._kill_timer = threading.Timer(self.kill_grace, self._kill_if_alive)
            self._kill_timer.daemon = True
            self._kill_timer.start()

    def kill(self) -> None:
        """SIGKILL to the whole group now."""
        self._signal(signal.SIGKILL)

    def _kill_if_alive(self) -> None:
        if self.process is not None and (self.process.poll() is None or self.group_alive()):
            log.warning("command %s ignored SIGTERM for %.1f s; sending SIGKILL", self.argv[0], self.kill_grace)
            self.kill()

    def _signal(self, sig: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class TemplateError(ValueError):
    """An argv template names something the payload does not provide."""


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}")


def fill_argv(template: Sequence[str], payload: Any) -> list[str]:
    """Each template item becomes one argument (never split, never given to a shell).

    `{name}` and `{a.b}` are looked up in the payload; `{{`/`}}` are literal
    braces. An item that is exactly one placeholder whose value is a list
    becomes one argument per element.
    """
    argv: list[str] = []
    for item in template:
        match = _PLACEHOLDER.fullmatch(item)
        if match and match.group(1):
            value = _lookup(payload, match.group(1))
            if isinstance(value, list):
                argv.extend(_scalar(v, match.group(1)) for v in value)
                continue
        argv.append(_PLACEHOLDER.sub(lambda m: _substitute(m, payload), item))
    return argv


def _substitute(match: re.Match, payload: Any) -> str:
    if match.group(0) == "{{":
        return "{"
    if match.group(0) == "}}":
        return "}"
    return _scalar(_lookup(payload, match.group(1)), match.group(1))


def _lookup(payload: Any, path: str) -> Any:
    value = payload
    for key in path.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise TemplateError(f"the payload has no {path!r}, which the command line needs")
    return value


def _scalar(value: Any, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TemplateError(f"payload field {path!r} must be a string or number to go on a command line")
