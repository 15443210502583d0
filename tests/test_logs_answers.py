"""A sealed attempt's big log answer is kept and answered again from memory
(webapp/jobs/logs.py), and only while nothing can change it: through the app on a real
database (each backend), its workers' reports sent to the internal API as a worker sends
them, the SQL it runs counted."""

from __future__ import annotations

import pytest

from benchmarks._support import statements_run
from webapp import jobs
from webapp.domain.log_lines import prefix
from webapp.jobs import logs as job_logs
from webapp.store.extensions import db

from tests.conftest import INTERNAL_KEY

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}
LINE = prefix("out") + "a line of a long log, as a chatty job writes it\n"


def lines(first: int, count: int) -> str:
    return "".join(f"{LINE[:-1]} {number}\n" for number in range(first, first + count))


def claimed(client) -> tuple[int, str]:
    job_id = client.post("/api/jobs", json={"type": "test.answers"}).get_json()["id"]
    [held] = client.post(
        "/api/internal/jobs/claim", json={"worker_id": "w", "types": ["test.answers"]}, headers=KEY
    ).get_json()["jobs"]
    assert held["id"] == job_id
    return job_id, held["lease_token"]


def report(client, *items: dict) -> list[dict]:
    answer = client.post("/api/internal/reports", json={"items": list(items)}, headers=KEY)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["results"]


def write(client, job_id: int, token: str, offset: int, text: str) -> int:
    """Send a piece of the log at `offset`; the offset after it."""
    [result] = report(client, {"kind": "log", "job_id": job_id, "lease_token": token, "offset": offset, "text": text})
    assert result == {"code": 200, "stored": True}
    return offset + len(text.encode())


def completed_with_log(client, text: str) -> int:
    job_id, token = claimed(client)
    write(client, job_id, token, 0, text)
    done = report(
        client,
        {"kind": "start", "job_id": job_id, "lease_token": token},
        {"kind": "complete", "job_id": job_id, "lease_token": token, "exit_code": 0},
    )
    assert [result["code"] for result in done] == [200, 200]
    return job_id


def read(client, job_id: int, **params) -> tuple[bytes, int]:
    """The answer's body, and how many statements read the log's pieces to make it."""
    with statements_run(db.engine) as seen:
        answer = client.get(f"/api/jobs/{job_id}/log", query_string=params)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    return answer.get_data(), sum("job_log_chunks.text" in statement for statement, _ in seen)


def test_a_finished_jobs_whole_log_read_again_reads_no_piece(app, client):
    text = lines(0, 2_000)  # about 160 KB
    job_id = completed_with_log(client, text)
    first, pieces_read = read(client, job_id)
    assert pieces_read == 1
    again, pieces_read_again = read(client, job_id)
    assert pieces_read_again == 0
    assert again == first
    answer = client.get(f"/api/jobs/{job_id}/log").get_json()
    assert answer == {
        "attempt": 1,
        "offset": 0,
        "next_offset": len(text.encode()),
        "text": text,
        "cut_bytes": 0,
        "final": True,
    }
    # Another offset is another answer; a small one is made again each time.
    tail, _ = read(client, job_id, offset=len(text.encode()) - len(LINE))
    assert read(client, job_id, offset=len(text.encode()) - len(LINE)) == (tail, 1)


def test_a_cancelled_attempt_whose_worker_still_writes_is_read_afresh(app, client):
    """Cancelled: the attempt has ended, but its worker holds the lease until it confirms the
    process stopped, and what it sends meanwhile is stored, even into a gap (the log's length
    unchanged): every read shows it, and says the log is not final (a page or `--follow` that
    stopped there would miss the last lines) until the worker confirms."""
    job_id, token = claimed(client)
    first, gap, last = lines(0, 1_000), lines(1_000, 10), lines(1_010, 1_000)
    end_of_gap = write(client, job_id, token, 0, first) + len(gap.encode())
    write(client, job_id, token, end_of_gap, last)
    assert client.post(f"/api/jobs/{job_id}/cancel", json={}).status_code == 200
    before, _ = read(client, job_id)
    read(client, job_id)
    write(client, job_id, token, len(first.encode()), gap)
    after, pieces_read = read(client, job_id)
    assert pieces_read == 1 and after != before
    answer = client.get(f"/api/jobs/{job_id}/log").get_json()
    assert answer["final"] is False and answer["text"] == first + gap + last
    [stopped] = report(client, {"kind": "stopped", "job_id": job_id, "lease_token": token})
    assert stopped["code"] == 200
    assert client.get(f"/api/jobs/{job_id}/log").get_json()["final"] is True


def test_a_deleted_jobs_kept_answer_is_never_given(app, client):
    """Pruned, the job's log is gone (404); a job made after it, which may get its id back on
    SQLite, answers its own log."""
    job_id = completed_with_log(client, lines(0, 2_000))
    read(client, job_id)
    read(client, job_id)
    finished = jobs.get_job(job_id).finished_at
    db.session.rollback()
    assert jobs.prune_finished("completed", cutoff=finished.replace(year=finished.year + 1), batch_size=10) == 1
    assert client.get(f"/api/jobs/{job_id}/log").status_code == 404
    other = lines(5_000, 2_000)
    other_id = completed_with_log(client, other)
    assert client.get(f"/api/jobs/{other_id}/log").get_json()["text"] == other


def test_kept_answers_stay_within_their_budget_the_least_recently_read_going_first(app, client, monkeypatch):
    texts = [lines(index * 10_000, 2_000) for index in range(4)]  # answers of 163-167 KB
    monkeypatch.setattr(job_logs, "ANSWER_CACHE_BYTES", 3 * 170_000)  # room for three
    logs = [completed_with_log(client, text) for text in texts]
    for job_id in logs:
        read(client, job_id)
    assert read(client, logs[0])[1] == 1  # dropped for the fourth
    assert read(client, logs[3])[1] == 0
    assert read(client, logs[2])[1] == 0
    assert read(client, logs[1])[1] == 1  # dropped for the first, read again


@pytest.fixture
def client(app):
    return app.test_client()


# A running attempt's answer: joined from the escaped pieces the process holds and those it reads.

WIDE = prefix("err") + 'é ✓ 😀 "quoted" \\ \t a line past ASCII, as a job in the wide world writes it\n'


def reference(app, job_id: int, **params) -> bytes:
    """The answer as it is made with nothing held: the whole text read and escaped at once."""
    return (app.json.dumps(job_logs.log_json(job_logs.attempt_log(job_id, **params))) + "\n").encode()


def mixed(first: int, count: int) -> str:
    return "".join(f"{(WIDE if number % 3 else LINE)[:-1]} {number}\n" for number in range(first, first + count))


def test_a_running_attempts_answer_joined_from_pieces_held_is_the_answer_read_afresh(app, client, monkeypatch):
    """Pieces of uneven sizes, some with non-ASCII text, the log growing through the cap and to
    three times it (so both boundaries of the cut move through pieces, held and read), a read
    from further on between the whole reads, a gap filled late; then the job completes. Every
    answer is joined from pieces (none made afresh because the pieces held could not make it)."""
    joined: list[bytes | None] = []
    join = job_logs._from_pieces
    monkeypatch.setattr(job_logs, "_from_pieces", lambda *args: joined.append(join(*args)) or joined[-1])
    job_id, token = claimed(client)
    offset, number, sizes = 0, 0, [900, 37, 1_900, 1, 1_300, 411]
    held = app.extensions
    while offset < 3 * job_logs.max_bytes():
        count = sizes[number % len(sizes)]
        if number == 3:  # a gap in the beginning, filled two pieces later
            gap_at, gap, offset = (
                offset,
                mixed(number * 10_000, count),
                offset + len(mixed(number * 10_000, count).encode()),
            )
        else:
            offset = write(client, job_id, token, offset, mixed(number * 10_000, count))
        if number == 5:
            write(client, job_id, token, gap_at, gap)
        number += 1
        whole, pieces_read = read(client, job_id)
        assert pieces_read == 1
        assert whole == reference(app, job_id)
        if number % 4 == 0:  # as a page following it does: from its end, and from inside the cut
            for inside in (offset - 100, offset // 3, 10):
                assert read(client, job_id, offset=inside)[0] == reference(app, job_id, offset=inside)
            assert read(client, job_id)[0] == reference(app, job_id)
    assert held[job_logs._PIECES_KEY].size > 0
    answer = client.get(f"/api/jobs/{job_id}/log").get_json()
    assert answer["cut_bytes"] > job_logs.max_bytes() and answer["next_offset"] == offset
    assert answer["text"].startswith(mixed(0, sizes[0])) and "😀" in answer["text"]
    done = report(
        client,
        {"kind": "start", "job_id": job_id, "lease_token": token},
        {"kind": "complete", "job_id": job_id, "lease_token": token, "exit_code": 0},
    )
    assert [result["code"] for result in done] == [200, 200]
    sealed, _ = read(client, job_id)
    assert sealed == reference(app, job_id) and sealed == read(client, job_id)[0]
    assert client.get(f"/api/jobs/{job_id}/log").get_json()["final"] is True
    assert held[job_logs._PIECES_KEY].size == 0  # its answer is kept whole instead
    assert len(joined) > 40 and None not in joined


def test_a_repeated_whole_read_of_a_running_attempt_escapes_only_what_came_since(app, client, monkeypatch):
    """Past the cap, the second read escapes the new piece and the shown parts of the two
    pieces the cut's boundaries lie in; not the megabyte the answer carries."""
    escaped: list[int] = []
    escape = job_logs._escaped
    monkeypatch.setattr(job_logs, "_escaped", lambda text: escaped.append(len(text)) or escape(text))
    job_id, token = claimed(client)
    offset = 0
    piece = lines(0, 600)  # about 50 KB
    while offset < 1.5 * job_logs.max_bytes():
        offset = write(client, job_id, token, offset, piece)
    first, _ = read(client, job_id)
    assert sum(escaped) > job_logs.max_bytes() * 0.9
    escaped.clear()
    write(client, job_id, token, offset, LINE)
    again, _ = read(client, job_id)
    assert again == reference(app, job_id) and again != first
    assert sum(escaped) <= 2 * len(piece) + len(LINE) + 100


def test_the_pieces_kept_stay_within_their_budget_however_many_running_logs_are_read(app, client, monkeypatch):
    """What the process holds after reading many running attempts' logs: their escaped pieces
    counted within the budget (the least recently read dropped), and the memory they take is
    what is counted."""
    import gc
    import tracemalloc

    budget = 3 * 170_000
    monkeypatch.setattr(job_logs, "PIECES_CACHE_BYTES", budget)  # room for about three
    running = []
    for index in range(12):
        job_id, token = claimed(client)
        write(client, job_id, token, 0, lines(index * 10_000, 2_000))  # about 165 KB
        running.append(job_id)
    read(client, running[0])  # the process's first read: its kept pieces and statements made
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for job_id in running[1:]:
            assert read(client, job_id)[0] == reference(app, job_id)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    pieces = app.extensions[job_logs._PIECES_KEY]
    assert 2 * 160_000 <= pieces.size <= budget
    assert kept <= budget + 256 * 1024  # what is counted, and a little more (the statements' own)
    assert pieces.get((job_logs._find(running[-1], None).row, job_logs.max_bytes())) is not None
    assert pieces.get((job_logs._find(running[0], None).row, job_logs.max_bytes())) is None


def test_a_log_of_many_one_line_pieces_is_joined_the_same_through_a_small_cap(app, client, monkeypatch):
    """A job writing a line now and then sends a piece a line: thousands of pieces, held as two
    runs (the statement the same however many), the cap cutting between them."""
    app.config["JOBWARDEN_LOG_MAX_BYTES"] = 100_000
    monkeypatch.setattr(job_logs, "CACHED_ANSWER_MIN_BYTES", 20_000)
    joined: list[bytes | None] = []
    join = job_logs._from_pieces
    monkeypatch.setattr(job_logs, "_from_pieces", lambda *args: joined.append(join(*args)) or joined[-1])
    job_id, token = claimed(client)
    offset = 0
    for batch in range(30):
        items = []
        for number in range(batch * 100, batch * 100 + 100):
            text = mixed(number, 1)
            items.append({"kind": "log", "job_id": job_id, "lease_token": token, "offset": offset, "text": text})
            offset += len(text.encode())
        assert all(result["code"] == 200 for result in report(client, *items))
        whole, pieces_read = read(client, job_id)
        assert pieces_read == 1 and whole == reference(app, job_id)
    assert client.get(f"/api/jobs/{job_id}/log").get_json()["cut_bytes"] > 100_000
    assert len(joined) > 20 and None not in joined
    escaped: list[int] = []
    escape = job_logs._escaped
    monkeypatch.setattr(job_logs, "_escaped", lambda text: escaped.append(len(text)) or escape(text))
    assert read(client, job_id)[0] == whole
    assert 0 < sum(escaped) < 1_000  # the parts of the two pieces the cut's boundaries lie in, and its marker
