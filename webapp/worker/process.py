"""External commands: run without a shell under a supervisor, keep the last
64 KB of their output and every line of it in the attempt's log (stdout and stderr
apart), and stop the command and every process it started
(children, grandchildren, daemons in their own sessions) with SIGTERM, then
SIGKILL after a grace period — also when the worker itself dies.
"""

from __future__ import annotations

import codecs
import errno
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..domain.limits import ARGV_ITEM_MAX_CHARS, ARGV_MAX_ITEMS, OUTPUT_TAIL_BYTES
from ..domain.log_lines import STDERR, STDOUT
from .logbook import AttemptLog

log = logging.getLogger(__name__)

SUPERVISOR = str(Path(__file__).with_name("supervisor.py"))
ORPHAN_GRACE_S = 1.0  # SIGTERM → SIGKILL for the commands of a worker that died (at most the kill grace)
# After a read that found little, the output reader waits this long for more: a command printing
# line by line costs the worker a read per READ_PAUSE_S, not one per line (docs/benchmarks.md,
# logs). It is also how closely lines of stdout and stderr keep their order between the two.
READ_PAUSE_S = 0.01
SMALL_READ_BYTES = 16 * 1024


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
            self._data += data[-self.limit :]
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
    """One external command under its own supervisor (webapp/worker/supervisor.py).

    The supervisor starts the command in its own session and process group,
    adopts and reaps every descendant, and stops all of them when the command
    is stopped, when the command exits leaving some behind, or when this worker
    dies — by a lifeline pipe the kernel closes on any death, `kill -9`
    included — or, when the worker is frozen, when the lease it last passed down
    the lifeline runs out. `wait()` returns the command's exit code once no descendant is
    left.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        output: OutputTail,
        log: AttemptLog | None = None,
        kill_grace: float = 10.0,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        lease_until: float | None = None,
    ):
        if not argv:
            raise ValueError("an external command needs at least a program name")
        self.argv = [str(arg) for arg in argv]
        self.output = output
        self.log = log
        self.kill_grace = kill_grace
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.lease_until = lease_until  # monotonic: the supervisor kills everything then unless renewed
        self.pid: int | None = None  # the command's (and its process group's) id
        self.supervisor: subprocess.Popen | None = None
        self._lifeline: int | None = None  # the write end: closed by the kernel when we die
        self._lifeline_lock = threading.Lock()  # a renewal never writes to a closed (reused) descriptor
        self._status: BinaryIO | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start the command; OSError (as from `Popen`) when it cannot be run."""
        lifeline_r, lifeline_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            self.supervisor = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    SUPERVISOR,
                    str(self.kill_grace),
                    str(min(self.kill_grace, ORPHAN_GRACE_S)),
                    str(lifeline_r),
                    str(status_w),
                    "--",
                    *self.argv,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # out of reach of the worker's terminal signals
                close_fds=True,
                pass_fds=(lifeline_r, status_w),
                env=self.env,
                cwd=self.cwd,
            )
        except BaseException:
            os.close(lifeline_w)
            os.close(status_r)
            raise
        finally:
            os.close(lifeline_r)
            os.close(status_w)
        self._lifeline = lifeline_w
        self.renew_lease(self.lease_until)
        self._status = os.fdopen(status_r, "rb")
        self._reader = threading.Thread(target=self._read, name=f"output-{self.supervisor.pid}", daemon=True)
        self._reader.start()
        word, _, value = self._status_line()
        if word != "started":
            code = int(value) if word == "error" and value.isdigit() else errno.ENOEXEC
            self._finish()
            raise OSError(code, os.strerror(code), self.argv[0])
        self.pid = int(value)

    def _status_line(self) -> tuple[str, str, str]:
        assert self._status is not None
        return self._status.readline().decode("ascii", "replace").strip().partition(" ")

    def _read(self) -> None:
        """Both pipes, into the output tail and the log (a decoder per stream: a character
        split between two reads stays whole)."""
        assert self.supervisor and self.supervisor.stdout and self.supervisor.stderr
        pipes = {self.supervisor.stdout.fileno(): STDOUT, self.supervisor.stderr.fileno(): STDERR}
        decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in pipes}
        try:
            while pipes:
                ready, _, _ = select.select(list(pipes), [], [])
                read = 0
                for fd in ready:
                    chunk = os.read(fd, 65536)
                    read += len(chunk)
                    if chunk:
                        self.output.write(chunk)
                    if self.log is not None:
                        self.log.write(pipes[fd], decoders[fd].decode(chunk, final=not chunk))
                    if not chunk:
                        if self.log is not None:
                            self.log.end(pipes[fd])
                        del pipes[fd]
                if pipes and read < SMALL_READ_BYTES:
                    time.sleep(READ_PAUSE_S)
        except OSError:
            pass
        finally:
            self.supervisor.stdout.close()
            self.supervisor.stderr.close()

    def wait(self) -> int:
        """Block until the command and every process it started are gone; the command's exit code."""
        assert self.supervisor is not None
        returncode: int | None = None
        while True:
            word, _, value = self._status_line()
            if word == "exit":
                returncode = int(value)
            elif word == "leftovers":
                log.info("command %s left processes behind; stopping them", self.argv[0])
            elif word == "lease":
                log.warning("command %s: the job's lease ran out unrenewed; killed it", self.argv[0])
            elif word == "killing":
                log.warning("command %s ignored SIGTERM for %s s; sending SIGKILL", self.argv[0], value)
            elif not word:  # the supervisor ended
                break
        supervisor_code = self._finish()
        return supervisor_code if returncode is None else returncode

    def _finish(self) -> int:
        assert self.supervisor is not None
        code = self.supervisor.wait()
        if self._reader:
            # A process that escaped the supervisor may still hold the pipe open; don't wait on it.
            self._reader.join(timeout=1.0)
        if self._status:
            self._status.close()
        with self._lifeline_lock:
            if self._lifeline is not None:
                os.close(self._lifeline)
                self._lifeline = None
        return code

    def renew_lease(self, until: float | None) -> None:
        """Tell the supervisor the lease runs until `until` (monotonic, one clock for the machine)."""
        if until is None:
            return
        with self._lifeline_lock:
            if self._lifeline is None:
                return
            self.lease_until = until
            try:
                os.write(self._lifeline, f"lease {until:.6f}\n".encode())
            except OSError:  # the supervisor is gone: nothing of the command is left to stop
                pass

    def terminate(self) -> None:
        """SIGTERM to the command and all it started now; SIGKILL after the grace unless they are gone."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the command and all it started now."""
        self._signal(signal.SIGUSR1)

    def _signal(self, sig: int) -> None:
        if self.supervisor is not None:
            self.supervisor.send_signal(sig)  # a no-op once the supervisor is reaped


class TemplateError(ValueError):
    """An argv template cannot be filled from this payload; the message names the field."""


OPTION_MARK = "!option"  # `{name!option}`: the value may begin with "-"
_PLACEHOLDER = re.compile(
    r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(" + re.escape(OPTION_MARK) + r")?\}"
)


def fill_argv(template: Sequence[str], payload: Any) -> list[str]:
    """Each template item becomes exactly one argument (never split, never given to a shell).

    `{name}` and `{a.b}` are looked up in the payload and take one string or
    number — never a list, which would smuggle in extra arguments. A value that
    begins an argument must not begin with "-" (it would read as an option)
    unless the template marks the slot `{name!option}`. `{{`/`}}` are literal braces.
    """
    return [_fill(item, payload) for item in template]


def clip_argv(argv: Sequence[str]) -> list[str]:
    """The argv as reported for the job page: within the server's caps, saying what was cut."""
    shown = list(argv)
    if len(shown) > ARGV_MAX_ITEMS:
        shown = [*shown[: ARGV_MAX_ITEMS - 1], f"… {len(shown) - ARGV_MAX_ITEMS + 1} more arguments"]
    return [_clip_item(item) for item in shown]


def _clip_item(item: str) -> str:
    if len(item) <= ARGV_ITEM_MAX_CHARS:
        return item
    mark = f"… ({len(item)} characters)"
    return item[: ARGV_ITEM_MAX_CHARS - len(mark)] + mark


def _fill(item: str, payload: Any) -> str:
    parts: list[str] = []
    position = 0
    for match in _PLACEHOLDER.finditer(item):
        parts.append(item[position : match.start()])
        position = match.end()
        if match.group(0) in ("{{", "}}"):
            parts.append(match.group(0)[0])
            continue
        path = match.group(1)
        value = _scalar(_lookup(payload, path), path)
        if value.startswith("-") and not "".join(parts) and not match.group(2):
            raise TemplateError(
                f"payload field {path!r} begins with '-' and would be read as an option; "
                f"the handler's template must mark the slot {{{path}{OPTION_MARK}}} to allow that"
            )
        parts.append(value)
    parts.append(item[position:])
    return "".join(parts)


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
        text = "true" if value else "false"
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        kind = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else "null"
        raise TemplateError(f"payload field {path!r} is {kind}; a command-line placeholder takes one string or number")
    if "\0" in text:
        raise TemplateError(f"payload field {path!r} contains a NUL character, which no argument can hold")
    return text
