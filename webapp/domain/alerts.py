"""The alert vocabulary: rule kinds, what each one measures, an alert's states, the defaults.

Free of imports so the CLI, the API's models, the migration that seeds the defaults and
the monitor all read one definition.
"""

from __future__ import annotations

from dataclasses import dataclass

ANY_SUBJECT = "*"
QUEUE_PREFIX = "queue:"  # a failure_rate rule's subject names a queue this way, else a type

FIRING = "firing"
RESOLVED = "resolved"
ALERT_STATES = (FIRING, RESOLVED)
# Why an alert resolved when its rule changed rather than its value (`alerts.rule_change`).
RULE_REMOVED = "removed"
RULE_DISABLED = "disabled"


@dataclass(frozen=True)
class RuleKind:
    """What a kind measures (`value`), of what (`subject`), and when it fires (value ≥ threshold)."""

    name: str
    subject: str  # what `subject` names: "type", "queue", "schedule" or "workers"
    measures: str  # the value, in words, for pages, mail and Slack
    unit: str  # "%", "s", "jobs", "runs", "workers"
    uses_window: bool
    default_window_s: int
    # Highest threshold accepted (a rate is at most 1).
    max_threshold: float


RULE_KINDS: dict[str, RuleKind] = {
    kind.name: kind
    for kind in (
        RuleKind("failure_rate", "type", "failed among completed and failed jobs in the window", "%", True, 900, 1.0),
        RuleKind("queue_latency", "queue", "age of the oldest queued job", "s", False, 0, 366 * 86400),
        RuleKind("no_worker", "type", "queued jobs of a type no live worker takes", "jobs", False, 0, 1e9),
        RuleKind(
            "stalled",
            "type",
            "longest time a running job has sent no heartbeat or progress",
            "s",
            False,
            0,
            366 * 86400,
        ),
        RuleKind("schedule_failing", "schedule", "runs of a schedule that failed in a row", "runs", False, 0, 1000),
        RuleKind("worker_deaths", "workers", "workers that died in the window", "workers", True, 3600, 1e6),
    )
}
KIND_NAMES = tuple(RULE_KINDS)

# A failure rate over fewer finished jobs than this says nothing (one failure of one job is 100 %).
DEFAULT_MIN_JOBS = 10
MAX_WINDOW_S = 30 * 86400
MAX_SUBJECT_LENGTH = 210  # a name (200) or queue:NAME


@dataclass(frozen=True)
class DefaultRule:
    kind: str
    threshold: float
    window_s: int = 0
    subject: str = ANY_SUBJECT
    min_jobs: int = DEFAULT_MIN_JOBS


# What a fresh install watches (seeded by the migration that made the tables).
DEFAULT_RULES = (
    DefaultRule("failure_rate", 0.5, 900),
    DefaultRule("queue_latency", 600),
    DefaultRule("no_worker", 1),
    DefaultRule("stalled", 300),
    DefaultRule("schedule_failing", 3),
    DefaultRule("worker_deaths", 3, 3600),
)


def describe(kind: str, subject: str, threshold: float, window_s: int) -> str:
    """A rule in words: "failure_rate of type video.transcode ≥ 50 % over 15 min"."""
    spec = RULE_KINDS[kind]
    every = "all" if spec.subject.endswith("s") else "every"  # "all workers", "every type"
    of = f"{every} {spec.subject}" if subject == ANY_SUBJECT else f"{spec.subject} {subject}"
    if kind == "failure_rate" and subject.startswith(QUEUE_PREFIX):
        of = f"queue {subject.removeprefix(QUEUE_PREFIX)}"
    window = f" over {format_seconds(window_s)}" if spec.uses_window else ""
    return f"{kind} of {of} ≥ {format_value(kind, threshold)}{window}"


def format_value(kind: str, value: float) -> str:
    unit = RULE_KINDS[kind].unit
    if unit == "%":
        return f"{value * 100:.0f} %"
    if unit == "s":
        return format_seconds(value)
    # Whole counts in full with thousands marked: ":g" wrote 1,200,000 jobs as "1.2e+06 jobs".
    # The units are plurals ending in "s": one of them is "1 job", not "1 jobs".
    counted = unit.removesuffix("s") if value == 1 else unit
    return f"{value:,.0f} {counted}" if float(value).is_integer() else f"{value:,g} {counted}"


def format_seconds(seconds: float) -> str:
    """ "15 min" for a whole number of a unit, "2.0 min" for a measure, "4.2 s" below a minute."""
    for size, name in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:g} {name}" if seconds % size == 0 else f"{seconds / size:.1f} {name}"
    return f"{seconds:g} s" if seconds == int(seconds) else f"{seconds:.1f} s"
