"""Page or region (dashboard.regions.render_region), on each database: a poll gets the
region it swaps, a page load or a history restore the whole page, and every answer
says it varies by HX-Request (and HX-Target) so no cache mixes them up."""

from __future__ import annotations

import pytest

from tests.factories import make_job

HX = {"HX-Request": "true"}
RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
# page path → the id its region starts with
REGIONS = {"/jobs": "jobs-region", "/health": "health-region", "/jobs/{job}": "job-region"}


def page_paths() -> list[str]:
    return list(REGIONS)


@pytest.fixture
def paths():
    job = make_job("running")
    return {path: path.format(job=job.id) for path in page_paths()}


@pytest.mark.parametrize("path", page_paths())
def test_a_page_load_gets_the_whole_page_and_varies_by_hx_request(client, paths, path):
    response = client.get(paths[path])
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" in html and f'id="{REGIONS[path]}"' in html
    assert "HX-Request" in response.vary


@pytest.mark.parametrize("path", page_paths())
def test_an_htmx_request_gets_only_the_region_and_varies_by_hx_request(client, paths, path):
    response = client.get(paths[path], headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html and f'id="{REGIONS[path]}"' in html
    assert "HX-Request" in response.vary


@pytest.mark.parametrize("path", page_paths())
def test_a_history_restore_gets_the_whole_page(client, paths, path):
    response = client.get(paths[path], headers=RESTORE)
    assert response.status_code == 200
    assert "<html" in response.get_data(as_text=True)
    assert "HX-Request" in response.vary and "HX-History-Restore-Request" in response.vary


def test_the_job_pages_log_panel_alone_for_a_request_aimed_at_it(client):
    """The page asks for it when a newer attempt begins (static/joblog.js): the panel, of the
    attempt asked for, without the page or the job region; varying by HX-Target."""
    job = make_job("running")
    response = client.get(f"/jobs/{job.id}?log_attempt=1", headers={**HX, "HX-Target": "log"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<section class="panel" id="log"' in html
    assert "<html" not in html and 'id="job-region"' not in html
    assert 'data-attempt="1"' in html and 'data-chosen="1"' in html
    assert "HX-Target" in response.vary
    missing = client.get(f"/jobs/{job.id}?log_attempt=9", headers={**HX, "HX-Target": "log"})
    assert missing.status_code == 404
