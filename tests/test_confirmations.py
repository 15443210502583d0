"""The in-page confirmations come from the action registry: which statuses ask, and
what the question says; the job page's forms carry it (and still post without it)."""

from __future__ import annotations

import html as markup
import re

import pytest

from webapp.domain.actions import ACTIONS, action_named

from tests.factories import make_job

ALL = ["pending", "queued", "claimed", "running", "completed", "failed", "cancelled"]


def test_force_start_asks_only_on_failed_and_cancelled_jobs_run_now_never_and_the_others_always():
    force_start = action_named("force-start")
    assert [s for s in ALL if force_start.asks_first(s)] == ["failed", "cancelled"]
    assert not any(action_named("run-now").asks_first(s) for s in ALL)  # it loses nothing
    for action in ACTIONS:
        if action.name not in ("force-start", "run-now"):
            assert all(action.asks_first(s) for s in ALL), action.name
        assert action.confirm_button and action.question and action.consequence, action.name


def test_the_cancel_question_names_the_job_and_the_signals(app):
    job = make_job("running")
    text = action_named("cancel").confirm_text(job)
    assert text.startswith(f"Cancel job {job.id} ({job.type}, running)?")
    assert "SIGTERM to its process group, then SIGKILL after the grace period" in text


@pytest.mark.parametrize("status", ["pending", "failed", "running"])
def test_each_action_form_posts_without_javascript_and_carries_its_confirmation(client, status):
    job = make_job(status)
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    forms = re.findall(r"<form method=\"post\" action=\"(/jobs/\d+/[\w-]+)\"(.*?)</form>", page, re.S)
    assert forms
    for action_url, form in forms:
        action = action_named(action_url.rsplit("/", 1)[1])
        assert f'hx-post="{action_url}"' in form and 'name="csrf_token"' in form
        asked = re.search(r'data-confirm="([^"]*)" data-confirm-button="([^"]*)"', form)
        effect = markup.unescape(re.search(r'data-testid="action-effect"[^>]*>(.*?)</p>', form, re.S).group(1))
        if action.asks_first(status):  # the question, then the line the card shows under the button
            assert asked and markup.unescape(asked.group(1)) == action.confirm_text(job, effect)
            assert asked.group(2) == action.confirm_button
        else:
            assert asked is None
    assert "hx-confirm" not in page


def test_every_status_has_an_icon_of_its_own(client):
    shapes = {}
    for status in ALL:
        page = client.get(f"/jobs/{make_job(status).id}").get_data(as_text=True)
        shapes[status] = re.search(rf'data-status="{status}"><svg[^>]*>(.*?)</svg>', page, re.S).group(1)
    assert all(shapes.values()) and len(set(shapes.values())) == len(ALL)
