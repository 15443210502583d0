"""webapp.domain.actions is the one list of operator actions: the state machine knows each
edge, and the API, the dashboard and the CLI offer exactly these actions."""

from __future__ import annotations

from webapp.cli.operator import jobs_group
from webapp.domain import statuses
from webapp.domain.actions import ACTION_NAMES, ACTIONS, actions_from
from webapp.jobs.actions import COMMANDS


def test_every_action_takes_an_edge_of_the_state_machine():
    assert all(action.edge in statuses.EDGES for action in ACTIONS)


def test_every_action_has_exactly_one_command_and_every_command_an_action():
    assert set(COMMANDS) == set(ACTION_NAMES)


def test_the_api_has_one_route_per_action(app):
    routes = {
        rule.rule.rsplit("/", 1)[-1]
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/jobs/<job_id:job_id>/")
    }
    assert set(ACTION_NAMES) <= routes


def test_the_cli_has_one_command_per_action():
    assert set(ACTION_NAMES) <= set(jobs_group.commands)


def test_the_actions_offered_are_the_ones_the_state_machine_allows():
    assert [action.name for action in actions_from(statuses.Status.RUNNING)] == ["mark-failed", "cancel"]
    assert actions_from(statuses.Status.COMPLETED) == []
