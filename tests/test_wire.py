"""What the dashboard costs on the wire: compressed answers, content-hashed static
URLs cached for a year, and a 50-row table poll within 5 KB."""

from __future__ import annotations

import re

from webapp import jobs

from tests.factories import make_job

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
