"""webapp.client against a real server on loopback (gunicorn on a real database),
and its retry rules against a small stub server that counts what it receives."""

from __future__ import annotations

import json
import os
import select
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import trustme

from webapp.client import ClientError, Conflict, JobwardenClient, LeaseLostError, NotFound, ServerUnavailable
from webapp.worker.protocol import WorkerClient

from tests.conftest import INTERNAL_KEY
from tests.support.server import PROJECT_ROOT, free_port


@pytest.fixture
def api(server) -> WorkerClient:
    return WorkerClient(server.url, internal_key=INTERNAL_KEY, timeout=5, retries=1, backoff=0.05)


def test_a_job_created_through_the_client_can_be_listed_read_and_cancelled(api):
    job = api.create("video.encode", {"file": "a.mp4"}, priority=3)
    assert [j["id"] for j in api.list(type="video.encode")["jobs"]] == [job["id"]]
    assert api.get(job["id"])["queue_position"] == 1
    assert api.cancel(job["id"], reason="not needed")["status"] == "cancelled"
    assert [e["action"] for e in api.events(job["id"])] == ["create", "cancel"]


def test_bulk_create_returns_the_ids(api):
    ids = api.create_many([{"type": "a"}, {"type": "b"}])
    assert [api.get(i)["type"] for i in ids] == ["a", "b"]


def test_a_refused_transition_raises_conflict_with_the_current_status(api):
    job = api.create("x", hold=True)
    api.force_start(job["id"])
    with pytest.raises(Conflict) as refused:
        api.force_start(job["id"])
    assert refused.value.status == "queued"


def test_an_unknown_job_raises_not_found(api):
    with pytest.raises(NotFound):
        api.get(123456)


def test_a_bad_request_raises_client_error_naming_the_field(api):
    with pytest.raises(ClientError) as bad:
        api.create("")
    assert (bad.value.code, bad.value.field) == (400, "type")


def test_a_worker_round_trip_through_the_internal_api(api):
    created = api.create("demo.noop")
    (job,) = api.claim("client-test", ["demo.noop"], batch_size=4)
    assert job["id"] == created["id"]
    api.start(job["id"], job["lease_token"])
    assert api.heartbeat(job["id"], job["lease_token"], progress=50, stage="half")["cancel_requested"] is False
    api.step(job["id"], job["lease_token"], name="only", event="started", attempt=1)
    api.complete(job["id"], job["lease_token"], result={"ok": True}, exit_code=0, output="done\n")
    finished = api.get(job["id"])
    assert (finished["status"], finished["result"], finished["steps"][0]["name"]) == ("completed", {"ok": True}, "only")


def test_a_cancelled_jobs_heartbeat_raises_lease_lost(api):
    api.create("demo.noop")
    (job,) = api.claim("client-test")
    api.start(job["id"], job["lease_token"])
    api.cancel(job["id"])
    with pytest.raises(LeaseLostError) as lost:
        api.heartbeat(job["id"], job["lease_token"])
    assert lost.value.status == "cancelled"


def test_the_internal_api_with_a_wrong_key_raises_401(server):
    with pytest.raises(ClientError) as refused:
        WorkerClient(server.url, internal_key="wrong", retries=0).claim("w")
    assert refused.value.code == 401


def test_a_claim_after_the_server_closed_the_kept_alive_connection_goes_out_on_a_new_one(server):
    """A worker claims again after a job that outlasted the server's keep-alive (gunicorn: 2 s):
    the closed connection is noticed before it is used, so the claim neither fails nor backs off."""
    client = WorkerClient(server.url, internal_key=INTERNAL_KEY, timeout=10, retries=0)
    assert client.claim("w1", ["nobody.runs.this"]) == []
    time.sleep(3)  # past gunicorn's keep-alive: the server has closed the connection
    assert client.claim("w1", ["nobody.runs.this"]) == []


# --- retries, against a stub that counts requests ----------------------------------------


class Stub:
    """A loopback HTTP server answering every request with one status; counts requests."""

    def __init__(self, status: int):
        self.status = status
        self.requests = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                stub.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps({"error": "stub", "message": "stub answer"}).encode()
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815  (the names BaseHTTPRequestHandler calls)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_server():
    stubs = []

    def make(status: int) -> Stub:
        stubs.append(Stub(status))
        return stubs[-1]

    yield make
    for stub in stubs:
        stub.close()


def test_a_5xx_is_retried_then_raises_server_unavailable(stub_server):
    stub = stub_server(503)
    client = WorkerClient(stub.url, internal_key="k", retries=3, backoff=0.01)
    with pytest.raises(ServerUnavailable, match="503"):
        client.heartbeat(1, "token")
    assert stub.requests == 4


def test_a_4xx_is_never_retried(stub_server):
    stub = stub_server(400)
    client = WorkerClient(stub.url, internal_key="k", retries=3, backoff=0.01)
    with pytest.raises(ClientError):
        client.heartbeat(1, "token")
    assert stub.requests == 1


def test_creating_a_job_is_not_repeated_after_a_5xx(stub_server):
    stub = stub_server(502)
    with pytest.raises(ServerUnavailable):
        JobwardenClient(stub.url, retries=3, backoff=0.01).create("x")
    assert stub.requests == 1


def test_an_unreachable_server_raises_server_unavailable_after_the_retries():
    client = JobwardenClient(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01, timeout=1)
    with pytest.raises(ServerUnavailable, match="cannot reach"):
        client.list()


# --- the operator commands ------------------------------------------------------------------


def jobwarden(*args: str, server_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JOBWARDEN_SERVER": server_url, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "webapp", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_commands_that_only_speak_http_load_no_server_code(server):
    """`jobwarden jobs list` imported the whole server (Flask, SQLAlchemy, Alembic) to send one
    request: over a second before it began."""
    env = {**os.environ, "JOBWARDEN_SERVER": server.url, "PYTHONPATH": str(PROJECT_ROOT)}
    for args in (["jobs", "list"], ["schedules", "list"], ["queues", "list"], ["alerts", "list"]):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "webapp", *args],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        imported = {
            line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")
        }
        assert "webapp.cli.operator" in imported
        server_side = {
            name for name in imported if name.split(".")[0] in {"flask", "sqlalchemy", "pydantic", "alembic"}
        }
        assert not server_side, (args, sorted(server_side)[:10])


def test_submit_creates_a_job_and_prints_it(server):
    done = jobwarden(
        "submit", "video.encode", "--payload", '{"file": "a.mp4"}', "--priority", "2", server_url=server.url
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert (job["type"], job["payload"], job["priority"], job["status"]) == (
        "video.encode",
        {"file": "a.mp4"},
        2,
        "queued",
    )


def test_submit_puts_a_job_in_a_queue_for_later_once_per_key_and_the_list_finds_it_by_queue(server):
    options = ["--queue", "gpu", "--concurrency-key", "cust-1", "--unique-key", "nightly", "--delay", "3600"]
    done = jobwarden("submit", "train", *options, server_url=server.url)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert (job["queue"], job["concurrency_key"], job["unique_key"]) == ("gpu", "cust-1", "nightly")
    created, run_after = (datetime.fromisoformat(job[name]) for name in ("created_at", "run_after"))
    assert run_after - created == timedelta(hours=1)
    again = jobwarden("submit", "train", *options, server_url=server.url)
    assert json.loads(again.stdout)["id"] == job["id"] and again.stderr == f"job {job['id']} queued (duplicate)\n"
    at = jobwarden("submit", "train", "--run-after", "2026-12-24T18:00:00+01:00", server_url=server.url)
    assert json.loads(at.stdout)["run_after"] in ("2026-12-24T17:00:00Z", json.loads(at.stdout)["created_at"])
    assert f"{job['id']}" in jobwarden("jobs", "list", "--queue", "gpu", server_url=server.url).stdout
    other = jobwarden("jobs", "list", "--queue", "cpu", server_url=server.url)
    assert other.stdout == "" and other.stderr == "No jobs match these filters.\n"
    naive = jobwarden("submit", "train", "--run-after", "2026-12-24T18:00:00", server_url=server.url)
    assert naive.returncode == 1 and "run_after: Input should have timezone info" in naive.stderr


def test_submit_with_a_payload_that_is_not_json_is_a_usage_error(server):
    done = jobwarden("submit", "x", "--payload", "{oops", server_url=server.url)
    assert done.returncode == 2 and "not valid JSON" in done.stderr


def test_jobs_list_show_and_cancel_from_the_terminal(server):
    created = json.loads(jobwarden("submit", "mail.send", server_url=server.url).stdout)
    listed = jobwarden("jobs", "list", "--status", "queued", server_url=server.url)
    header, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "TYPE", "PROGRESS", "LAST", "ERROR"]
    assert row.split() == [str(created["id"]), "queued", "mail.send"]
    assert (
        json.loads(jobwarden("jobs", "show", str(created["id"]), server_url=server.url).stdout)["id"] == created["id"]
    )
    assert (
        jobwarden("jobs", "cancel", str(created["id"]), server_url=server.url).stdout.strip()
        == f"job {created['id']} is now cancelled"
    )
    again = jobwarden("jobs", "cancel", str(created["id"]), server_url=server.url)
    assert again.returncode == 1 and "refused: current status is cancelled" in again.stderr


def test_a_delayed_job_is_run_now_from_the_terminal(server):
    created = json.loads(jobwarden("submit", "mail.send", "--delay", "3600", server_url=server.url).stdout)
    done = jobwarden("jobs", "run-now", str(created["id"]), "--reason", "customer waiting", server_url=server.url)
    assert done.stdout.strip() == f"job {created['id']} is now queued, due now", done.stderr
    shown = json.loads(jobwarden("jobs", "show", str(created["id"]), server_url=server.url).stdout)
    assert shown["run_after"] < created["run_after"]
    again = jobwarden("jobs", "run-now", str(created["id"]), server_url=server.url)
    assert again.returncode == 1 and "refused: current status is queued" in again.stderr


def test_the_python_client_sends_a_datetime_and_a_timedelta_as_the_api_reads_them(server):
    client = JobwardenClient(server.url)
    at_noon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    later = client.create("report", run_after=at_noon)
    assert datetime.fromisoformat(later["run_after"]) == at_noon
    soon = client.create("report", delay_s=timedelta(minutes=5))
    waits = datetime.fromisoformat(soon["run_after"]) - datetime.fromisoformat(soon["created_at"])
    assert waits == timedelta(minutes=5)
    (bulk_id,) = client.create_many([{"type": "report", "run_after": at_noon}])
    assert datetime.fromisoformat(client.get(bulk_id)["run_after"]) == at_noon
    with pytest.raises(ClientError) as naive:
        client.create("report", run_after=datetime(2030, 1, 1))
    assert naive.value.field == "run_after"


def test_jobs_list_says_so_when_nothing_matches(server):
    nothing = jobwarden("jobs", "list", server_url=server.url)
    assert nothing.returncode == 0 and nothing.stdout == "" and nothing.stderr == "No jobs.\n"
    jobwarden("submit", "mail.send", server_url=server.url)
    filtered = jobwarden("jobs", "list", "--status", "failed", "--type", "mail.send", server_url=server.url)
    assert filtered.returncode == 0 and filtered.stdout == ""
    assert filtered.stderr == "No jobs match these filters.\n"


def test_schedules_and_queues_lists_say_so_when_there_are_none(server):
    schedules = jobwarden("schedules", "list", server_url=server.url)
    assert schedules.returncode == 0 and schedules.stdout == "" and schedules.stderr == "No schedules.\n"
    queues = jobwarden("queues", "list", server_url=server.url)
    assert queues.returncode == 0 and queues.stdout == "" and queues.stderr == "No queues: no job named one yet.\n"


def test_jobs_mark_failed_needs_a_reason(server):
    created = json.loads(jobwarden("submit", "x", server_url=server.url).stdout)
    assert jobwarden("jobs", "mark-failed", str(created["id"]), server_url=server.url).returncode == 2
    done = jobwarden("jobs", "mark-failed", str(created["id"]), "--reason", "bad input", server_url=server.url)
    assert done.returncode == 0 and "failed" in done.stdout


def test_a_command_against_an_unreachable_server_says_so(server):
    done = jobwarden("jobs", "list", server_url=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1 and "Error: cannot reach" in done.stderr


def test_metrics_under_gunicorn_add_up_what_every_worker_process_counted(api, server):
    for _ in range(6):
        api.create("metered")
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    assert 'jobwarden_transitions_total{action="create",to_status="queued"} 6.0' in text
    assert 'jobwarden_jobs{status="queued"} 6.0' in text


# --- the claim's own connection over TLS ------------------------------------------------------


def test_a_claim_hung_up_over_tls_still_reads_its_answer_verified_with_the_session_s_ca(tmp_path, monkeypatch):
    """The worker's claim line: TLS verified with the CA the worker's other calls use
    (REQUESTS_CA_BUNDLE), and a half-close that keeps TLS intact, so an answer sent after
    the hang-up — jobs the server claimed a moment before — is still read."""
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    hung_up_seen = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            # The client's half-close makes the raw socket readable; TLS is left alone.
            if select.select([self.connection], [], [], 10)[0]:
                hung_up_seen.set()
            body = json.dumps({"jobs": [{"id": 7, "lease_token": "t"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = WorkerClient(f"https://127.0.0.1:{server.server_address[1]}", internal_key="k", timeout=10)
        answers: list[list] = []
        claiming = threading.Thread(target=lambda: answers.append(client.claim("w1", wait_s=20)))
        claiming.start()
        time.sleep(0.5)  # the claim waits at the server
        client.hang_up_claims()
        claiming.join(timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert hung_up_seen.is_set()
    assert answers == [[{"id": 7, "lease_token": "t"}]]
