"""Which code runs for which job type — configured on the worker side only.

A handlers module (``--handlers my.module``) defines a module-level
``registry = Registry()`` and registers on it:

    @registry.handler("thumbnails", timeout_s=600)
    def thumbnails(ctx):            # a Python callable; its return value is the result
        ...

    registry.command("backup", ["pg_dump", "--dbname", "{database}"], timeout_s=3600)

    registry.schedule("nightly-backup", cron="0 2 * * *", timezone="Europe/Berlin", type="backup")

An external command is an argv template filled from the job's payload and run
without a shell; exit code 0 completes the job, anything else fails it.

A declared schedule is sent to the server when the worker starts (the server checks
it: a bad one stops nothing but is logged); one no longer declared is marked missing
there, never deleted.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .context import JobContext, JobFailed
from .process import TemplateError, fill_argv, signal_name

Handler = Callable[[JobContext], Any]


@dataclass(frozen=True)
class PythonHandler:
    type: str
    function: Handler
    timeout_s: float | None = None

    def run(self, ctx: JobContext) -> Any:
        return self.function(ctx)


@dataclass(frozen=True)
class CommandHandler:
    type: str
    argv: tuple[str, ...]
    timeout_s: float | None = None
    env: Mapping[str, str] | None = None
    cwd: str | None = None

    def argv_for(self, payload: Any) -> list[str]:
        """The command line this payload fills in (TemplateError when it cannot)."""
        return fill_argv(self.argv, payload if payload is not None else {})

    def run(self, ctx: JobContext) -> Any:
        try:
            argv = self.argv_for(ctx.payload)
        except TemplateError as error:
            raise JobFailed(str(error), retryable=False) from None
        try:
            returncode = ctx.run(argv, env=self.env, cwd=self.cwd)
        except FileNotFoundError:
            raise JobFailed(f"command not found: {argv[0]}", retryable=False) from None
        except PermissionError:
            raise JobFailed(f"command not executable: {argv[0]}", retryable=False) from None
        if returncode != 0:
            killed = signal_name(returncode)
            message = f"killed by {killed}" if killed else f"exited with code {returncode}"
            raise JobFailed(message, exit_code=returncode)
        return None


class RegistryError(ValueError):
    """The handler configuration cannot be used; the message says why."""


@dataclass
class Registry:
    """Job type → handler. Types are matched exactly."""

    handlers: dict[str, PythonHandler | CommandHandler] = field(default_factory=dict)
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → the schedule API's fields

    def handler(self, type: str, *, timeout_s: float | None = None) -> Callable[[Handler], Handler]:
        """Decorator: register a Python callable `f(ctx)` for `type`."""

        def register(function: Handler) -> Handler:
            self._add(PythonHandler(type, function, timeout_s))
            return function

        return register

    def command(
        self,
        type: str,
        argv: Sequence[str],
        *,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        """Register an external command for `type`: `argv` items may hold `{payload.field}`."""
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise RegistryError(f"{type}: argv must be a non-empty list of strings (no shell)")
        self._add(CommandHandler(type, tuple(argv), timeout_s, dict(env) if env else None, cwd))

    def schedule(
        self, name: str, *, type: str, cron: str | None = None, every_s: int | None = None, **settings: Any
    ) -> None:
        """Declare a schedule: `cron` (with `timezone`) or `every_s`, and the job's `type`; settings as
        the schedule API takes them (payload, priority, max_attempts, queue, misfire, overlap)."""
        if name in self.schedules:
            raise RegistryError(f"schedule {name!r} is declared twice")
        if (cron is None) == (every_s is None):
            raise RegistryError(f"schedule {name!r}: give either cron or every_s")
        timing = {"cron": cron} if cron is not None else {"every_s": every_s}
        self.schedules[name] = {"name": name, "type": type, **timing, **settings}

    def _add(self, handler: PythonHandler | CommandHandler) -> None:
        if not handler.type:
            raise RegistryError("a handler needs a job type")
        if handler.timeout_s is not None and handler.timeout_s <= 0:
            raise RegistryError(f"{handler.type}: timeout_s must be positive")
        if handler.type in self.handlers:
            raise RegistryError(f"job type {handler.type!r} has two handlers")
        self.handlers[handler.type] = handler

    def get(self, type: str) -> PythonHandler | CommandHandler | None:
        return self.handlers.get(type)

    @property
    def types(self) -> list[str]:
        return sorted(self.handlers)

    def merge(self, other: Registry) -> None:
        for handler in other.handlers.values():
            self._add(handler)
        for name, declared in other.schedules.items():
            if name in self.schedules:
                raise RegistryError(f"schedule {name!r} is declared twice")
            self.schedules[name] = declared


def load(module_names: Sequence[str]) -> Registry:
    """One registry from the `registry` attribute of each named module."""
    merged = Registry()
    for name in module_names:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            raise RegistryError(f"cannot import handlers module {name!r}: {error}") from error
        registry = getattr(module, "registry", None)
        if not isinstance(registry, Registry):
            raise RegistryError(f"handlers module {name!r} has no `registry = Registry()`")
        merged.merge(registry)
    return merged


def timeout_for(job: Mapping[str, Any], handler: PythonHandler | CommandHandler | None) -> float | None:
    """The job's own `timeout_s`, else its type's default, else none."""
    if job.get("timeout_s"):
        return float(job["timeout_s"])
    return handler.timeout_s if handler else None
