"""Page or region (dashboard.regions.render_region), on each database: a poll gets the
region it swaps, a page load or a history restore the whole page, and every answer
says it varies by HX-Request so no cache mixes them up."""

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
