"""The supervisor between a worker and one external command: the command and
everything it starts die with the worker, even on `kill -9` of the worker.

Run by `GroupProcess` as its own script (`python -I -S supervisor.py …`, the
standard library only, so it starts in milliseconds and never imports the web
app). It

- becomes a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`), so every
  descendant of the command whose parent exits — a grandchild left behind, a
  daemon that double-forked into its own session — becomes its child: it can
  reach them all, and it reaps them all (no zombie survives, even when the
  worker is PID 1 in a container);
- starts the command in its own session and process group and tells the
  worker `started PID`, or `error ERRNO` when it cannot be run;
- holds the read end of a lifeline pipe whose write end only the worker holds.
  The kernel closes it when the worker dies, however it dies (a pipe does not
  care which thread forked, unlike `PR_SET_PDEATHSIG`): then the supervisor
  stops everything — SIGTERM, SIGKILL after the orphan grace;
- reads from that pipe the job's lease (`lease UNTIL`, a `time.monotonic()` value:
  one clock for every process of the machine), renewed by the worker with each
  heartbeat the server answered; when it runs out unrenewed — the worker is
  frozen (SIGSTOP, a long pause) or cut off from the server — SIGKILLs everything
  at once and tells the worker `lease`: by then the server may hand the job on;
- on SIGTERM from the worker, stops everything (SIGKILL after the grace); on
  SIGUSR1, SIGKILLs everything at once;
- when the command exits, tells the worker `exit RETURNCODE` (negative: killed
  by that signal) and stops whatever the command left running (`leftovers`);
  when it must SIGKILL after a grace, tells the worker `killing SECONDS`;
- exits only when it has no child left, i.e. when no descendant is alive.

    supervisor.py GRACE ORPHAN_GRACE LIFELINE_FD STATUS_FD -- ARGV…
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
SWEEP_S = 0.05  # while killing: how often newly adopted orphans are swept up


def become_subreaper() -> bool:
    """Orphaned descendants become our children (Linux ≥ 3.4); False elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children() -> list[int]:
    """Our own children, from /proc (the kernel's list, or a scan of every process)."""
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as listing:
            return [int(pid) for pid in listing.read().split()]
    except OSError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == me:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


class Supervisor:
    def __init__(self, argv: list[str], grace: float, orphan_grace: float, lifeline: int, status: int):
        self.argv, self.grace, self.orphan_grace = argv, grace, orphan_grace
        self.lifeline: int | None = lifeline
        self.status = status
        self.command_pid = 0
        self.command_done = False
        self.kill_at: float | None = None  # SIGKILL everything from then on
        self.term_at: float | None = None  # when everything got SIGTERM
        self.killing = False
        self.lease_until: float | None = None  # monotonic: everything dies then unless renewed
        self.lease_out = False
        self._lifeline_buffer = b""

    def tell(self, line: str) -> None:
        try:
            os.write(self.status, f"{line}\n".encode())
        except OSError:  # the worker is gone; the lifeline says so too
            pass

    def signal_all(self, sig: int) -> None:
        """`sig` to the command's group and to every adopted descendant and its group."""
        targets = {-self.command_pid} if self.command_pid else set()
        own_group = os.getpgrp()
        for pid in children():
            targets.add(pid)
            try:
                group = os.getpgid(pid)
            except OSError:
                continue
            if group != own_group:
                targets.add(-group)
        for target in targets:
            try:
                if target < 0:
                    os.killpg(-target, sig)
                else:
                    os.kill(target, sig)
            except OSError:
                pass

    def stop(self, grace: float) -> None:
        """SIGTERM everything now, SIGKILL after `grace` (an earlier deadline stays)."""
        deadline = time.monotonic() + grace
        if self.kill_at is None or deadline < self.kill_at:
            self.kill_at = deadline
        if self.term_at is None:
            self.term_at = time.monotonic()
            self.signal_all(signal.SIGTERM)

    def read_lifeline(self) -> bool:
        """Take the worker's lease renewals; False when the worker died (the pipe closed)."""
        assert self.lifeline is not None
        data = os.read(self.lifeline, 4096)
        if not data:
            return False
        lines = (self._lifeline_buffer + data).split(b"\n")
        self._lifeline_buffer = lines.pop()
        for line in lines:
            word, _, value = line.decode("ascii", "replace").partition(" ")
            if word == "lease":
                self.lease_until = float(value)
        return True

    def reap(self) -> bool:
        """Reap every child that ended; False once no child is left."""
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.command_pid:
                self.command_done = True
                self.tell(f"exit {os.waitstatus_to_exitcode(wait_status)}")
                if children():
                    self.tell("leftovers")
                    self.stop(self.grace)

    def run(self) -> int:
        become_subreaper()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGCHLD, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)  # a handler (not SIG_IGN): the command gets the defaults back
        for fd in (self.status, *([self.lifeline] if self.lifeline is not None else [])):
            os.set_inheritable(fd, False)  # the command gets stdout and stderr only
        try:
            # posix_spawn, not subprocess: importing subprocess would double our start-up time.
            self.command_pid = os.posix_spawnp(
                self.argv[0],
                self.argv,
                os.environ,
                setsid=True,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)],
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # Python ignores these; the command must not
            )
        except OSError as error:
            self.tell(f"error {error.errno or errno.ENOEXEC}")
            return 127
        self.tell(f"started {self.command_pid}")
        while self.reap():
            now = time.monotonic()
            if self.lease_until is not None and now >= self.lease_until and not self.lease_out:
                self.lease_out = True
                self.tell("lease")
                self.stop(0)
            if self.kill_at is not None and now >= self.kill_at:
                if not self.killing and self.term_at is not None and now > self.term_at:
                    self.tell(f"killing {now - self.term_at:.1f}")  # something ignored SIGTERM
                self.killing = True
                self.signal_all(signal.SIGKILL)
                timeout: float | None = SWEEP_S
            elif self.kill_at is not None:
                timeout = self.kill_at - now
            else:
                timeout = None
            if self.lease_until is not None and not self.lease_out:
                until_lease = max(0.0, self.lease_until - now)
                timeout = until_lease if timeout is None else min(timeout, until_lease)
            watched = [wake_r] + ([self.lifeline] if self.lifeline is not None else [])
            ready, _, _ = select.select(watched, [], [], timeout)
            if wake_r in ready:
                for signum in os.read(wake_r, 512):
                    if signum == signal.SIGTERM:
                        self.stop(self.grace)
                    elif signum == signal.SIGUSR1:
                        self.stop(0)
            if self.lifeline is not None and self.lifeline in ready and not self.read_lifeline():
                os.close(self.lifeline)
                self.lifeline = None  # the worker died: nobody is left to report to
                self.stop(self.orphan_grace)
        return 0


def main(args: list[str]) -> int:
    grace, orphan_grace, lifeline, status, separator, *argv = args
    if separator != "--" or not argv:
        sys.stderr.write(__doc__ or "")
        return 2
    return Supervisor(argv, float(grace), float(orphan_grace), int(lifeline), int(status)).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
