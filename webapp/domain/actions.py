"""The operator's recovery actions, named and worded once: the JSON API's routes, the
dashboard's buttons and bulk form, and the `jobwarden jobs` commands are all made from
`ACTIONS`. What each one does to a job is webapp.jobs.actions (`COMMANDS`); this half is
words and rules only, so the command line, which speaks only HTTP, offers the actions
without loading the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .statuses import edges_from


class NamedJob(Protocol):
    """What a confirmation names of a job."""

    @property
    def id(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def status(self) -> str: ...


@dataclass(frozen=True)
class Action:
    name: str  # in URLs, the API's bulk `action`, and the CLI
    edge: str  # the state-machine edge it takes (statuses.EDGES)
    label: str  # the button
    bulk_label: str  # the bulk form's button
    summary: str  # the API operation's summary
    description: str  # the API operation's and the CLI command's help
    style: str = "danger"  # the button's class: primary or danger
    confirm_button: str = ""  # the confirming button of the in-page dialog ("Cancel job")
    question: str = ""  # the confirmation's question; "{job}" names the job
    consequence: str = ""  # what happens, said in the confirmation
    confirm_from: frozenset[str] | None = None  # the statuses that ask first; None: every status
    asks_reason: bool = False  # the job page's form has a reason field
    cli_needs_reason: bool = False  # `jobwarden jobs <name>` requires --reason
    durable: bool = False  # offered on the job page only to jobs with recorded steps or a checkpoint
    early: bool = False  # offered on the job page only to a job waiting for its run_after

    @property
    def python_name(self) -> str:
        """`force_start` for `force-start`: the view's and the client method's name."""
        return self.name.replace("-", "_")

    def asks_first(self, status: str) -> bool:
        """Whether acting on a job in `status` opens a confirmation first."""
        return self.confirm_from is None or status in self.confirm_from

    def confirm_text(self, job: NamedJob, effect: str | None = None) -> str:
        """The confirmation's question: the action, the job, and what will happen (`effect`:
        said for this job, see dashboard.recovery_effects; else the generic consequence)."""
        named = f"job {job.id} ({job.type}, {job.status})"
        return f"{self.question.format(job=named)} {effect or self.consequence}"


ACTIONS: tuple[Action, ...] = (
    Action(
        name="run-now",
        edge="run_now",
        label="Run now",
        bulk_label="Run selected now",
        style="primary",
        summary="Run a waiting job now",
        description=(
            "A queued job waiting for its run_after (a delay, a retry's backoff) becomes due now, with the "
            "attempts it has; a paused or full queue still holds it. A job already due, or not queued, is a 409."
        ),
        consequence="Due now instead of at its time: the next free worker takes it.",
        confirm_button="Run now",  # the bulk form's confirmation; the job page asks nothing (nothing is lost)
        question="Run {job} now?",
        confirm_from=frozenset(),
        early=True,
    ),
    Action(
        name="force-start",
        edge="force_start",
        label="Force start",
        bulk_label="Force start selected",
        style="primary",
        confirm_button="Force start",
        question="Force start {job}?",
        consequence=(
            "It goes back to the queue with one more attempt; steps it completed before are replayed from their "
            "stored results, not run again."
        ),
        confirm_from=frozenset({"failed", "cancelled"}),
        summary="Force-start a job",
        description="Pending → queued; failed or cancelled → queued with one more attempt. A second click is a 409.",
    ),
    Action(
        name="mark-failed",
        edge="fail",
        label="Mark as failed",
        bulk_label="Mark selected as failed",
        summary="Mark a job as failed",
        description="Any unfinished job → failed, with `reason`.",
        confirm_button="Mark as failed",
        question="Mark {job} as failed?",
        consequence="It is not retried; a worker still running it is told to stop at its next heartbeat.",
        asks_reason=True,
        cli_needs_reason=True,
    ),
    Action(
        name="cancel",
        edge="cancel",
        label="Cancel",
        bulk_label="Cancel selected",
        summary="Cancel a job",
        description="Pending, queued, claimed or running → cancelled; a running worker stops at its next heartbeat.",
        confirm_button="Cancel job",
        question="Cancel {job}?",
        consequence="A running command gets SIGTERM to its process group, then SIGKILL after the grace period.",
    ),
    Action(
        name="resume",
        edge="resume",
        label="Resume",
        bulk_label="Resume selected",
        style="primary",
        summary="Resume a job from its first step not completed",
        description=(
            "Failed or cancelled → queued with one more attempt; completed durable steps are replayed from their "
            "stored results and the handler sees its last checkpoint. A completed or live job is a 409."
        ),
        confirm_button="Resume",
        question="Resume {job} from its first step not completed?",
        consequence="It goes back to the queue with one more attempt; completed steps return their stored results.",
        durable=True,
    ),
    Action(
        name="restart",
        edge="restart",
        label="Restart from scratch",
        bulk_label="Restart selected",
        summary="Restart a job from scratch",
        description=(
            "Failed or cancelled → queued with one more attempt, discarding stored step results and the checkpoint "
            "in the same transaction. A completed or live job is a 409."
        ),
        confirm_button="Restart from scratch",
        question="Restart {job} from scratch?",
        consequence="Its stored step results and checkpoint are discarded and every step runs again.",
        durable=True,
    ),
)
ACTION_NAMES: tuple[str, ...] = tuple(action.name for action in ACTIONS)


def action_named(name: str) -> Action:
    """The action called `name`; KeyError for any other."""
    for action in ACTIONS:
        if action.name == name:
            return action
    raise KeyError(name)


def actions_from(status: str, *, durable: bool = True, waiting: bool = False) -> list[Action]:
    """The actions the state machine allows from `status`, in button order; without
    `durable` (no recorded steps, no checkpoint) resume and restart, which would do
    what Force start does, are left out; without `waiting` (for its run_after), Run now,
    which would find the job already due."""
    allowed = set(edges_from(status))
    return [
        action
        for action in ACTIONS
        if action.edge in allowed and (durable or not action.durable) and (waiting or not action.early)
    ]
