"""What the dashboard costs on the wire: compressed answers, content-hashed static
URLs cached for a year, and a 50-row table poll within 5 KB."""

from __future__ import annotations

import gzip
import re
import urllib.error
import urllib.request

import pytest

from webapp import jobs

from tests.factories import make_job
from tests.support.server import PROJECT_ROOT, running_server

HX = {"HX-Request": "true"}
GZIP = {"Accept-Encoding": "gzip"}


def test_pages_and_polls_are_gzipped(client):
    make_job("queued")
    for path in ("/jobs", "/health"):
        response = client.get(path, headers=GZIP)
        assert response.headers.get("Content-Encoding") == "gzip", path
        assert "Accept-Encoding" in response.headers.get("Vary", "")


def test_a_fifty_row_table_poll_is_at_most_5_kb_on_the_wire(client):
    created = jobs.create_jobs([{"type": f"video.encode.{i % 7}", "payload": {"n": i}} for i in range(60)])
    for job in created[:10]:
        jobs.mark_failed(job.id, reason=f"ffmpeg exited 1 on frame {job.id * 37}\nTraceback …")
    response = client.get("/jobs", headers={**HX, **GZIP})
    assert response.headers["Content-Encoding"] == "gzip"
    assert len(response.get_data()) <= 5 * 1024, len(response.get_data())


def test_static_urls_carry_a_content_hash_and_are_cached_for_a_year(client):
    html = client.get("/jobs").get_data(as_text=True)
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert len(urls) >= 4  # the stylesheet, htmx, idiomorph and the dashboard script
    for url in urls:
        assert re.search(r"[?&]v=[0-9a-f]{12}$", url.replace("&amp;", "&")), url
        response = client.get(url.replace("&amp;", "&"))
        assert response.status_code == 200, url
        assert (
            "max-age=31536000" in response.headers["Cache-Control"] and "immutable" in response.headers["Cache-Control"]
        )
        response.close()


def test_an_unversioned_static_url_is_still_revalidated(client):
    response = client.get("/static/dashboard.css")
    assert "max-age=31536000" not in response.headers.get("Cache-Control", "")
    response.close()


@pytest.fixture
def server(app, database_url, tmp_path):
    with running_server(database_url, tmp_path / "server.log") as running:
        yield running


def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as answer:
        return answer.code, dict(answer.headers), answer.read()


@pytest.mark.parametrize(
    "name, on_disk",
    [
        ("dashboard.css", PROJECT_ROOT / "static" / "dashboard.css"),
        ("htmx", PROJECT_ROOT / "node_modules" / "htmx.org" / "dist" / "htmx.min.js"),
    ],
)
def test_static_files_are_gzipped_for_a_browser_that_accepts_it_and_still_revalidate(server, name, on_disk):
    _, _, page = fetch(f"{server.url}/jobs")
    (path,) = {url for url in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.decode()) if name in url}
    url = server.url + path.replace("&amp;", "&")

    status, headers, body = fetch(url, **{"Accept-Encoding": "gzip, deflate, br, zstd"})  # Chromium's
    assert (status, headers.get("Content-Encoding")) == (200, "gzip")
    assert gzip.decompress(body) == on_disk.read_bytes() and len(body) < on_disk.stat().st_size / 2
    assert "Accept-Encoding" in headers["Vary"] and "immutable" in headers["Cache-Control"]
    assert int(headers["Content-Length"]) == len(body)
    assert headers["ETag"].startswith('W/"')

    again, revalidated, empty = fetch(url, **{"Accept-Encoding": "gzip", "If-None-Match": headers["ETag"]})
    assert (again, empty) == (304, b"")
    assert revalidated["ETag"] == headers["ETag"]

    status, plain_headers, plain = fetch(url, **{"Accept-Encoding": "identity"})
    assert (status, plain_headers.get("Content-Encoding"), plain) == (200, None, on_disk.read_bytes())
    assert not plain_headers["ETag"].startswith("W/")
