"""The job page's log region: hostile text escaped and ANSI codes stripped, the follower's
fragment sends only what the page lacks, earlier attempts one click away; and the store's
cap and offsets, on both databases."""

from __future__ import annotations

import re

from webapp import jobs
from webapp.domain.log_lines import prefix
from webapp.jobs import logs
from webapp.store.logs import LogPiece

from tests.factories import make_job


def write(job, text: str, offset: int) -> int:
    """Append `text` to the job's current attempt as its worker would; the next offset."""
    with jobs.unit_of_work():
        logs.append([LogPiece(job.id, job.lease_token, offset, text)])
    return offset + len(text.encode())


def log_region(html: str) -> str:
    found = re.search(r'<pre class="log"[^>]*data-testid="job-log".*?</pre>', html, re.S)
    assert found, "no job-log on the page"
    return found.group(0)


def test_hostile_log_text_is_escaped_and_its_colour_codes_stripped(client):
    job = make_job("running")
    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)> "quoted" \x1b[31mred\x1b[0m \x1b]0;title\x07done'
    write(job, f"{prefix('err')}{hostile}\n", 0)
    region = log_region(client.get(f"/jobs/{job.id}").get_data(as_text=True))
    assert "<script>" not in region and "<img" not in region and "\x1b" not in region
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in region
    assert "red done" in region and 'data-stream="err"' in region


def test_an_attempt_that_ended_without_a_line_says_so_without_an_empty_log_box(client):
    quiet = make_job("completed")
    page = client.get(f"/jobs/{quiet.id}").get_data(as_text=True)
    assert "This attempt wrote nothing." in page and "Nothing written yet." not in page
    assert re.search(r'<pre class="log"[^>]*\bhidden\b', log_region(page))
    running = make_job("running")
    page = client.get(f"/jobs/{running.id}").get_data(as_text=True)
    assert "Nothing written yet." in page and not re.search(r'<pre class="log"[^>]*\bhidden\b', log_region(page))


def test_the_follower_gets_only_what_it_lacks_and_is_told_where_to_go_on(client):
    job = make_job("running")
    middle = write(job, f"{prefix('out')}first\n", 0)
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert f'data-offset="{middle}"' in log_region(page) and 'data-final="0"' in log_region(page)
    end = write(job, f"{prefix('out')}second\n", middle)
    more = client.get(f"/jobs/{job.id}/log", query_string={"attempt": 1, "offset": middle})
    assert more.status_code == 200
    body = more.get_data(as_text=True)
    assert "second" in body and "first" not in body
    assert more.headers["X-Log-Next-Offset"] == str(end) and more.headers["X-Log-Final"] == "0"
    assert more.headers["X-Log-Attempt"] == "1"
    refused = client.get(f"/jobs/{job.id}/log", query_string={"offset": "-3"})
    assert refused.status_code == 400 and "offset" in refused.get_data(as_text=True)
    assert client.get(f"/jobs/{job.id}/log", query_string={"attempt": 9}).status_code == 404


def test_earlier_attempts_are_one_click_away_and_each_downloads_as_text(app, client):
    app.config["JOBWARDEN_RETRY_BASE_S"] = app.config["JOBWARDEN_RETRY_MAX_S"] = 0.0
    job = make_job("running", max_attempts=3)
    write(job, f"{prefix('out')}attempt one\n", 0)
    jobs.fail_job(job.id, job.lease_token, error="boom")
    (again,) = jobs.claim_jobs("w", types=[job.type])
    write(again, f"{prefix('out')}attempt two\n", 0)
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert "attempt two" in log_region(page) and "attempt one" not in log_region(page)
    assert f'href="/jobs/{job.id}?log_attempt=1#log"' in page
    first = client.get(f"/jobs/{job.id}?log_attempt=1").get_data(as_text=True)
    assert "attempt one" in log_region(first) and 'data-final="1"' in log_region(first)
    assert f'href="/api/jobs/{job.id}/log?attempt=1&amp;format=text"' in first
    download = client.get(f"/api/jobs/{job.id}/log?attempt=1&format=text")
    assert download.mimetype == "text/plain" and download.get_data(as_text=True).endswith("attempt one\n")


def test_over_the_cap_the_beginning_and_end_are_kept_the_cut_counted_and_offsets_hold(app, client):
    app.config["JOBWARDEN_LOG_MAX_BYTES"] = 4096
    job = make_job("running")
    offset, lines = 0, []
    for batch in range(40):
        text = "".join(f"{prefix('out')}line {batch * 5 + i:04d}\n" for i in range(5))
        lines += text.splitlines(keepends=True)
        offset = write(job, text, offset)
    whole = "".join(lines)
    answer = client.get(f"/api/jobs/{job.id}/log").get_json()
    shown = answer["text"]
    kept = [line for line in shown.splitlines(keepends=True) if "bytes cut" not in line]
    assert kept[0] == lines[0] and kept[-1] == lines[-1]
    assert len("".join(kept).encode()) <= 4096
    assert answer["cut_bytes"] == len(whole.encode()) - len("".join(kept).encode())
    assert answer["next_offset"] == offset == len(whole.encode())
    # Sent again (an answer lost), a piece is stored once; from an offset in the cut, the reader goes on after it.
    write(job, lines[-1], offset - len(lines[-1].encode()))
    assert client.get(f"/api/jobs/{job.id}/log").get_json()["text"] == shown
    from_cut = client.get(f"/api/jobs/{job.id}/log", query_string={"offset": 2500}).get_json()
    assert "bytes cut" in from_cut["text"].splitlines()[0] and from_cut["text"].endswith(lines[-1])


def test_a_log_of_mixed_scripts_reads_the_same_bytes_from_any_offset(app, client):
    """ASCII pieces are sliced by character, others by byte: both must give the bytes the
    offsets name, whichever side of the cut they lie on."""
    app.config["JOBWARDEN_LOG_MAX_BYTES"] = 4096
    job = make_job("running")
    offset, pieces = 0, []
    words = ["plain ascii", "café crème", "€ 12,50 — ok", "🚀 launched 🛰"]
    for batch in range(60):
        text = "".join(
            f"{prefix('out')}{words[(batch + i) % len(words)] if batch % 3 else 'ascii'} {i}\n" for i in range(4)
        )
        pieces.append((offset, text.encode()))
        offset = write(job, text, offset)
    whole = b"".join(data for _, data in pieces)

    def line_start(byte: int, forward: bool) -> int:
        start, data = next((start, data) for start, data in pieces if start < byte < start + len(data))
        newline = data.find(b"\n", byte - start) if forward else data.rfind(b"\n", 0, byte - start)
        return byte if newline < 0 else start + newline + 1

    head_end, tail_start = line_start(2048, forward=False), line_start(len(whole) - 2048, forward=True)

    def expected(at: int) -> str:
        if at >= tail_start:
            return whole[at:].decode()
        head = whole[at:head_end] if at < head_end else b""
        cut = tail_start - max(at, head_end)
        return head.decode() + f"[{cut:,} bytes cut" + whole[tail_start:].decode()

    text = whole.decode()
    for char in range(0, len(text), 31):
        at = len(text[:char].encode())
        answer = client.get(f"/api/jobs/{job.id}/log", query_string={"offset": at}).get_json()
        shown = answer["text"]
        assert answer["cut_bytes"] == tail_start - head_end
        assert answer["next_offset"] == len(whole)
        want = expected(at)
        if "bytes cut" in want:  # the marker's wording past its count is the domain's
            before, after = want.split("[", 1)[0], want.split(" bytes cut", 1)[0]
            assert shown.startswith(after) and shown.endswith(whole[tail_start:].decode()), at
            assert before == shown[: len(before)]
        else:
            assert shown == want, at
