"""The /health and /stats pages on real databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from webapp import jobs
from webapp.domain.timeutil import utcnow
from webapp.jobs import queries
from webapp.server.dashboard import stats
from webapp.server.dashboard.stats import WINDOWS
from webapp.store.extensions import db
from webapp.store.models import Job

from tests.factories import make_job

HX = {"HX-Request": "true"}


def text_of(response) -> str:
    return response.get_data(as_text=True)


def silence(job: Job, seconds: float) -> None:
    db.session.execute(update(Job).where(Job.id == job.id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))
    db.session.commit()


def test_the_health_page_says_healthy_when_nothing_is_stuck(client):
    make_job("running")
    html = text_of(client.get("/health"))
    assert "Healthy: nothing is stuck." in html and "Orphaned jobs (0)" in html


def test_an_orphaned_job_is_listed_with_its_reason_and_a_way_to_recover_it(client):
    job = make_job("running")
    silence(job, jobs.heartbeat_timeout(job) * 3)
    html = text_of(client.get("/health"))
    assert "Attention needed." in html and "Orphaned jobs (1)" in html
    row = re.search(rf'<tr data-job-id="{job.id}">.*?</tr>', html, re.S).group(0)
    assert "no heartbeat" in row.lower() and f"/jobs/{job.id}#recovery-card" in row


def test_a_late_job_is_listed_before_it_is_orphaned(client):
    job = make_job("running")
    silence(job, jobs.heartbeat_timeout(job) * 0.75)
    html = text_of(client.get("/health"))
    assert "Late jobs (1)" in html and "Orphaned jobs (0)" in html


def test_workers_are_listed_with_their_types_and_last_heartbeat(client):
    jobs.register_worker("w-1", hostname="box", pid=4242, types=["mail.send"], concurrency=2)
    html = text_of(client.get("/health"))
    row = re.search(r'<tr data-worker-id="w-1">.*?</tr>', html, re.S).group(0)
    assert "box / 4242" in row and "mail.send" in row and "alive" in row


def test_a_queued_type_no_live_worker_takes_raises_an_alert(client):
    jobs.register_worker("w-1", types=["mail.send"], concurrency=1)
    make_job("queued", type="mail.send")
    make_job("queued", type="video.encode")
    alerts = re.findall(
        r'data-testid="unserved-type">No live worker for type <strong>([^<]+)</strong>', text_of(client.get("/health"))
    )
    assert alerts == ["video.encode"]


def test_a_worker_taking_every_type_serves_every_queued_type(client):
    jobs.register_worker("w-any", types=None, concurrency=1)
    make_job("queued", type="video.encode")
    assert "No live worker for type" not in text_of(client.get("/health"))


def test_an_htmx_poll_of_the_health_page_gets_only_its_region(client):
    html = text_of(client.get("/health", headers=HX))
    assert "<html" not in html and html.strip().startswith('<div id="health-region"')


def test_the_stats_chart_counts_finished_and_failed_jobs_in_the_current_minute(client):
    make_job("completed"), make_job("completed"), make_job("failed")
    html = text_of(client.get("/stats"))
    chart = html.split('data-testid="chart-throughput"', 1)[1].split("</figure>", 1)[0]
    assert re.search(r"<title>\d\d:\d\d: completed 2</title>", chart)
    assert re.search(r"<title>\d\d:\d\d: failed 1</title>", chart)
    assert len(re.findall(r"<tr><th scope=\"row\">\d\d:\d\d</th>", chart)) == 60  # a table row per minute


def test_the_stats_group_failures_by_error_with_a_link_to_the_filtered_table(client):
    for _ in range(2):
        jobs.mark_failed(make_job("queued").id, reason="disk full")
    jobs.mark_failed(make_job("queued").id, reason="<i>bad</i> input")
    html = text_of(client.get("/stats"))
    assert re.search(
        r'<a href="/jobs\?status=failed&amp;q=disk\+full">disk full</a></td>\s*<td class="num">2</td>', html
    )
    assert "&lt;i&gt;bad&lt;/i&gt; input" in html and "<i>bad</i>" not in html


def test_a_storm_of_failures_is_grouped_from_its_newest_and_the_page_says_so(client, monkeypatch):
    """/stats read every failure of its window at every load (a million in a day's storm); it
    groups the newest FAILURES_GROUPED (here 4) and says so."""
    monkeypatch.setattr(queries, "FAILURES_GROUPED", 4)
    for number, reason in enumerate(["old cause"] * 3 + ["new cause"] * 4):
        job = make_job("queued")
        jobs.mark_failed(job.id, reason=reason)
        db.session.execute(
            update(Job).where(Job.id == job.id).values(finished_at=utcnow() - timedelta(minutes=30 - number))
        )
    db.session.commit()
    html = text_of(client.get("/stats"))
    assert "Among the newest 4 failures of" in html
    assert re.search(r'>new cause</a></td>\s*<td class="num">4</td>', html) and "old cause" not in html
    monkeypatch.setattr(queries, "FAILURES_GROUPED", 10)
    html = text_of(client.get("/stats"))
    assert "Among the newest" not in html and re.search(r'>old cause</a></td>\s*<td class="num">3</td>', html)


def test_the_stats_average_running_time_covers_finished_jobs(client):
    job = make_job("completed")
    db.session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(started_at=job.finished_at - timedelta(seconds=90), claimed_at=job.finished_at - timedelta(seconds=95))
    )
    db.session.commit()
    assert "<dt>Running</dt><dd>1m 30s</dd>" in text_of(client.get("/stats"))


def test_the_health_page_is_not_healthy_beside_an_unserved_type_alert(client):
    jobs.register_worker("mail-only", types=["mail.send"], concurrency=1)
    jobs.create_job(type="video.encode")
    html = text_of(client.get("/health"))
    assert 'data-testid="unserved-type"' in html
    assert "Healthy" not in html and "Attention needed" in html


def test_workers_show_busy_and_total_slots_with_their_current_jobs(client):
    job = make_job("running")  # claimed by factory-worker
    jobs.register_worker("factory-worker", concurrency=4)
    jobs.register_worker("idle-worker", concurrency=2)
    html = text_of(client.get("/health"))
    row = re.search(r'<tr data-worker-id="factory-worker">.*?</tr>', html, re.S).group(0)
    assert re.search(r'data-testid="worker-slots">1 / 4<', row)
    assert f'href="/jobs/{job.id}">#{job.id}</a> {job.type}' in row
    idle = re.search(r'<tr data-worker-id="idle-worker">.*?</tr>', html, re.S).group(0)
    assert re.search(r'data-testid="worker-slots">0 / 2<', idle) and "idle" in idle


def test_the_health_page_shows_no_raw_iso_timestamps(client):
    make_job("running")
    jobs.register_worker("factory-worker", concurrency=1)
    html = text_of(client.get("/health"))
    assert "<time" in html
    visible = re.sub(r"<[^>]+>", " ", html)
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", visible)
    assert not re.search(r'title="\d{4}-\d\d-\d\dT', html)


def test_the_stats_by_type_give_each_types_failure_rate(client):
    for status in ("completed", "completed", "completed", "failed"):
        make_job(status, type="mail.send")
    make_job("cancelled", type="mail.send")
    make_job("failed", type="video.encode")
    html = text_of(client.get("/stats?window=24h"))
    table = re.search(r'data-testid="stats-by-type">.*?</table>', html, re.S).group(0)
    rows = re.findall(
        r'<tr>\s*<td><a href="/jobs\?type=([^"]+)">.*?</td>\s*'
        r'<td class="num">(\d+)</td><td class="num">(\d+)</td><td class="num">(\d+)</td>\s*'
        r'<td class="num">(\d+) %</td></tr>',
        table,
        re.S,
    )
    assert rows == [("video.encode", "0", "1", "0", "100"), ("mail.send", "3", "1", "1", "25")]


def test_the_stats_windows_are_1h_24h_7d_and_30d_and_another_is_a_400(client):
    make_job("completed")
    for window, buckets in (("1h", 60), ("24h", 24), ("7d", 56), ("30d", 60)):
        html = text_of(client.get(f"/stats?window={window}"))
        chart = html.split('data-testid="chart-throughput"', 1)[1].split("</figure>", 1)[0]
        assert len(re.findall(r'<tr><th scope="row">', chart)) == buckets, window
        assert re.search(r"<title>[^<]*: completed 1</title>", chart), window
    response = client.get("/stats?window=1y")
    assert response.status_code == 400 and "window:" in text_of(response)


def test_the_stats_say_so_when_nothing_finished_instead_of_drawing_an_empty_chart(client):
    make_job("queued")
    html = text_of(client.get("/stats"))
    assert 'data-testid="stats-empty"' in html and "No job finished in the last hour" in html
    chart = html.split('data-testid="chart-throughput"', 1)[1].split("</figure>", 1)[0]
    assert "nothing to show in this window" in chart and "<circle" not in chart


def test_the_stats_buckets_and_averages_take_each_finished_jobs_times_to_the_microsecond(client):
    """The store buckets and sums; this is what the Python loop it replaced computed, at bucket edges."""
    now = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
    window = WINDOWS["7d"]
    starts = [start for start, _, _ in stats.over(now, window).buckets]
    micro = timedelta(microseconds=1)
    finishes = [
        ("completed", starts[0] - micro),  # before the window: not counted
        ("completed", starts[0]),
        ("failed", starts[1] - micro),
        ("completed", starts[1] - micro),
        ("completed", starts[1]),
        ("failed", starts[1] + timedelta(seconds=59, microseconds=999_999)),
        ("cancelled", starts[30] + micro),
        ("completed", starts[-1]),
        ("failed", now + timedelta(days=1)),  # a clock ahead of ours: the last bucket
    ]
    expected = [[0, 0] for _ in starts]
    waits, claims, runs = [], [], []
    for number, (status, finished_at) in enumerate(finishes):
        job = make_job(status)
        created_at = finished_at - timedelta(seconds=100 + number, microseconds=123_457 * number)
        claimed_at = None if number == 2 else created_at + timedelta(seconds=7, microseconds=999_999)
        started_at = None if claimed_at is None else claimed_at + timedelta(microseconds=250_001)
        times = dict(created_at=created_at, claimed_at=claimed_at, started_at=started_at, finished_at=finished_at)
        db.session.execute(update(Job).where(Job.id == job.id).values(**times))
        if finished_at < starts[0]:
            continue
        slot = max(i for i, start in enumerate(starts) if start <= finished_at)
        if status != "cancelled":
            expected[slot][status == "failed"] += 1
        if claimed_at:
            waits.append((claimed_at - created_at).total_seconds())
            claims.append((started_at - claimed_at).total_seconds())
            runs.append((finished_at - started_at).total_seconds())
    db.session.commit()

    figures = stats.over(now, window)

    assert [[done, failed] for _, done, failed in figures.buckets] == expected
    assert figures.finished == len(finishes) - 1
    averages = dict(figures.averages)
    for label, values in (("Waiting (pending + queued)", waits), ("Claimed", claims), ("Running", runs)):
        assert averages[label] == pytest.approx(sum(values) / len(values), abs=1e-6), label
