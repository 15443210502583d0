"""People, roles, tokens and the audit trail, through the real app on a real database:
`jobwarden users`, the admin password of older installs, API tokens (shown once, kept
hashed, scoped, revocable, last use), sessions that end when a user is disabled, CSRF on
every dashboard form, the guess allowance for Bearer and Basic, the audit trail of every
write (naming the person in the job's own events), and payloads hidden from viewers."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from benchmarks._support import statements_run
from webapp import jobs
from webapp.cli.users import users_group
from webapp.domain.roles import Role
from webapp.jobs import tokens, users
from webapp.store.extensions import db
from webapp.store.models import ApiToken, AuditEntry, User

from tests.conftest import postgresql_only
from tests.factories import make_job

ADMIN_PASSWORD = "the old shared admin password"
PASSWORD = "twelve chars at least"


@pytest.fixture
def app_config(app_config):
    return {
        **app_config,
        "JOBWARDEN_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "JOBWARDEN_GUESS_RATE_LIMIT": "4 per minute",
        "JOBWARDEN_GUESS_RATE_LIMIT_TOTAL": "100 per minute",
        "JOBWARDEN_LOGIN_RATE_LIMIT": "100 per minute",
    }


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def person(name: str, role: Role) -> users.Person:
    return users.add_user(name, role, PASSWORD)


def token_of(name: str, role: Role) -> str:
    return tokens.create(person(name, role), "script", role).secret


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(app, name: str, password: str = PASSWORD):
    browser = app.test_client()
    token = csrf_of(browser.get("/login").get_data(as_text=True))
    answer = browser.post("/login", data={"name": name, "password": password, "csrf_token": token})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return browser


# --- users -------------------------------------------------------------------------------


def test_users_add_prints_a_one_time_password_that_signs_in_and_is_stored_as_argon2(app):
    runner = app.test_cli_runner()
    done = runner.invoke(users_group, ["add", "alice", "--role", "operator"])
    assert done.exit_code == 0, done.output
    password = done.output.rsplit(": ", 1)[1].strip()
    assert len(password) >= 20
    stored = db.session.execute(select(User.password_hash).where(User.name == "alice")).scalar_one()
    assert stored.startswith("$argon2id$") and password not in stored
    job = make_job("queued")
    answer = app.test_client().post(f"/api/jobs/{job.id}/cancel", json={}, headers=basic("alice", password))
    assert answer.status_code == 200
    assert jobs.events_of(job.id)[-1].actor == "alice"


def test_users_list_says_when_there_is_nobody(app):
    listed = app.test_cli_runner().invoke(users_group, ["list"])
    assert listed.exit_code == 0 and listed.stdout == ""
    assert listed.stderr == "No users: add one with `jobwarden users add NAME --role admin`.\n"


def test_users_add_reads_the_password_from_stdin_and_refuses_a_short_one(app):
    runner = app.test_cli_runner()
    done = runner.invoke(users_group, ["add", "bob", "--role", "viewer", "--password-stdin"], input=PASSWORD + "\n")
    assert done.exit_code == 0 and PASSWORD not in done.output
    assert users.authenticate("bob", PASSWORD).role is Role.VIEWER
    short = runner.invoke(users_group, ["add", "carol", "--role", "viewer", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "password: at least 12" in short.output
    listed = runner.invoke(users_group, ["list"]).output
    assert "bob\tviewer\tpassword\tactive" in listed and "carol" not in listed


def test_disabling_a_user_ends_their_session_and_tokens_at_once(app):
    person("dora", Role.OPERATOR)
    secret = tokens.create(users.authenticate("dora", PASSWORD), "ci", Role.OPERATOR).secret
    browser = sign_in(app, "dora")
    job = make_job("failed")
    page = browser.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert ">Force start</button>" in page and "dora (operator)" in page
    done = app.test_cli_runner().invoke(users_group, ["disable", "dora"])
    assert done.exit_code == 0, done.output
    refused = browser.post(f"/jobs/{job.id}/force-start", data={"csrf_token": csrf_of(page)})
    assert refused.status_code == 403
    assert jobs.get_job(job.id).status == "failed"
    assert ">Force start</button>" not in browser.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert app.test_client().post(f"/api/jobs/{job.id}/force-start", json={}, headers=bearer(secret)).status_code == 401
    assert users.authenticate("dora", PASSWORD) is None


def test_a_new_password_ends_the_old_sessions(app):
    person("erin", Role.OPERATOR)
    browser = sign_in(app, "erin")
    assert "erin (operator)" in browser.get("/jobs").get_data(as_text=True)
    app.test_cli_runner().invoke(
        users_group, ["reset-password", "erin", "--password-stdin"], input="another long one!\n"
    )
    assert "erin (operator)" not in browser.get("/jobs").get_data(as_text=True)
    assert users.authenticate("erin", "another long one!") is not None


def test_the_admin_password_keeps_working_beside_users(app):
    """An install that had only JOBWARDEN_ADMIN_PASSWORD upgrades without lock-out."""
    person("frank", Role.VIEWER)
    job = make_job("queued")
    client = app.test_client()
    answer = client.post(f"/api/jobs/{job.id}/cancel", json={}, headers=basic("anyone", ADMIN_PASSWORD))
    assert answer.status_code == 200
    assert jobs.events_of(job.id)[-1].actor == "admin"
    browser = sign_in(app, "", ADMIN_PASSWORD)
    assert "admin (admin)" in browser.get("/jobs").get_data(as_text=True)
    # a user's name with the admin password is not that user, nor the admin
    assert client.get("/api/webhooks", headers=basic("frank", ADMIN_PASSWORD)).status_code == 401


# --- tokens ------------------------------------------------------------------------------


def test_a_token_is_shown_once_kept_hashed_and_listed_without_its_secret(app):
    person("gina", Role.OPERATOR)
    client = app.test_client()
    created = client.post("/api/tokens", json={"name": "ci", "role": "viewer"}, headers=basic("gina", PASSWORD))
    assert created.status_code == 201, created.json
    secret = created.json["token"]
    assert secret.startswith("jw_") and len(secret) > 40
    stored = db.session.execute(select(ApiToken.secret_hash)).scalar_one()
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    dumped = "\n".join(str(row) for row in db.session.execute(text("SELECT * FROM api_tokens")))
    assert secret not in dumped
    listed = client.get("/api/tokens", headers=bearer(token_of("gina-admin", Role.ADMIN))).json["tokens"]
    assert all("token" not in entry for entry in listed)
    assert [entry["last_used_at"] for entry in listed if entry["name"] == "ci"] == [None]
    assert client.get("/api/jobs", headers=bearer(secret)).status_code == 200
    db.session.expire_all()
    assert db.session.execute(select(ApiToken.last_used_at).where(ApiToken.name == "ci")).scalar_one() is not None


def test_a_token_acts_with_its_role_never_above_its_owner(app):
    person("hal", Role.OPERATOR)
    client = app.test_client()
    too_high = client.post("/api/tokens", json={"name": "x", "role": "admin"}, headers=basic("hal", PASSWORD))
    assert (too_high.status_code, too_high.json["field"]) == (400, "role")
    viewer_token = client.post("/api/tokens", json={"name": "r", "role": "viewer"}, headers=basic("hal", PASSWORD))
    operator_token = client.post("/api/tokens", json={"name": "w", "role": "operator"}, headers=basic("hal", PASSWORD))
    job = make_job("queued")
    refused = client.post(f"/api/jobs/{job.id}/cancel", json={}, headers=bearer(viewer_token.json["token"]))
    assert refused.status_code == 403 and "operator role" in refused.json["message"]
    users.set_role("hal", Role.VIEWER)  # the owner is demoted: so is every token of theirs
    demoted = client.post(f"/api/jobs/{job.id}/cancel", json={}, headers=bearer(operator_token.json["token"]))
    assert demoted.status_code == 403
    assert jobs.get_job(job.id).status == "queued"
    assert (
        client.post(
            "/api/tokens", json={"name": "t", "role": "viewer"}, headers=bearer(operator_token.json["token"])
        ).status_code
        == 403
    )


def test_a_revoked_token_stops_at_once_and_only_its_owner_or_an_admin_revokes_it(app):
    secret = token_of("ivy", Role.OPERATOR)
    other = token_of("jack", Role.OPERATOR)
    client = app.test_client()
    ivys = tokens.tokens_of(None)[-1][0].id
    assert client.delete(f"/api/tokens/{ivys}", headers=bearer(other)).status_code == 404
    assert client.get("/api/jobs", headers=bearer(secret)).status_code == 200
    assert client.delete(f"/api/tokens/{ivys}", headers=bearer(secret)).json["revoked"] is True
    job = make_job("queued")
    assert client.post(f"/api/jobs/{job.id}/cancel", json={}, headers=bearer(secret)).status_code == 401


# --- guesses and CSRF --------------------------------------------------------------------


@pytest.mark.parametrize("wrong", [bearer("jw_" + "x" * 43), basic("kim", "not her password")], ids=["bearer", "basic"])
def test_wrong_tokens_and_user_passwords_draw_on_the_guess_allowance(app, wrong):
    secret = token_of("kim", Role.OPERATOR)
    client = app.test_client()
    for _ in range(4):
        assert client.get("/api/webhooks", headers=wrong).status_code == 401
    refused = client.get("/api/webhooks", headers=wrong)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # past the limit even a right token waits: it is not checked at all
    assert client.get("/api/jobs", headers=bearer(secret)).status_code == 429


def test_every_dashboard_form_still_needs_its_csrf_token(app):
    person("lee", Role.ADMIN)
    browser = sign_in(app, "lee")
    job = make_job("failed")
    assert browser.post(f"/jobs/{job.id}/force-start").status_code == 400
    assert browser.post("/queues/default/pause").status_code == 400
    assert jobs.get_job(job.id).status == "failed"


# --- the audit trail ---------------------------------------------------------------------


def test_every_change_is_in_the_audit_trail_with_who_where_why_and_how_it_ended(app):
    operator = token_of("mia", Role.OPERATOR)
    viewer = token_of("ned", Role.VIEWER)
    admin = token_of("ola", Role.ADMIN)
    client = app.test_client()
    job = make_job("queued")
    headers = {**bearer(operator), "X-Forwarded-For": "ignored"}
    done = client.post(f"/api/jobs/{job.id}/mark-failed", json={"reason": "disk full"}, headers=headers,
                       environ_base={"REMOTE_ADDR": "10.1.2.3"})  # fmt: skip
    assert done.status_code == 200
    again = client.post(f"/api/jobs/{job.id}/cancel", json={}, headers=bearer(operator))
    assert again.status_code == 409
    assert client.post("/api/queues/default/pause", json={}, headers=bearer(viewer)).status_code == 403
    bulk = client.post(
        "/api/jobs/actions", json={"action": "force-start", "ids": [job.id, 999]}, headers=bearer(operator)
    )
    assert bulk.json["changed"] == 1
    created = client.post("/api/schedules", json={"name": "n", "every_s": 60, "type": "x"}, headers=bearer(admin))
    assert created.status_code == 201
    assert jobs.events_of(job.id)[-1].actor == "mia"

    trail = client.get("/api/audit", headers=bearer(admin)).json["entries"]
    by_action = {entry["action"]: entry for entry in trail}
    failed = by_action["POST /api/jobs/<job_id>/mark-failed"]
    assert (failed["actor"], failed["target"], failed["reason"], failed["address"], failed["outcome"]) == (
        "mia", f"job_id={job.id}", "disk full", "10.1.2.3", "ok")  # fmt: skip
    assert failed["via"].startswith("token:")
    assert by_action["POST /api/jobs/<job_id>/cancel"]["outcome"] == "409 conflict"
    assert by_action["POST /api/queues/<name>/pause"]["outcome"] == "403 forbidden"
    assert by_action["POST /api/queues/<name>/pause"]["actor"] == "ned"
    assert by_action["POST /api/jobs/actions"]["data"] == {"ids": [job.id, 999], "changed": 1, "skipped": [999]}
    assert by_action["POST /api/schedules"]["actor"] == "ola"
    assert "POST /api/tokens" not in by_action  # tokens here were made in Python, not through the API

    only_mia = client.get("/api/audit?actor=mia&outcome=ok", headers=bearer(admin)).json["entries"]
    assert {entry["action"] for entry in only_mia} == {"POST /api/jobs/<job_id>/mark-failed", "POST /api/jobs/actions"}
    assert client.get("/api/audit", headers=bearer(operator)).status_code == 403
    table = client.get("/audit?actor=mia", headers=bearer(admin)).get_data(as_text=True).split("audit-table")[1]
    assert "disk full" in table and "10.1.2.3" in table and "ola" not in table


def test_an_empty_audit_trail_says_whether_a_filter_left_it_empty(client):
    admin = bearer(token_of("ola", Role.ADMIN))  # made in Python: no entry
    assert "No entries yet" in client.get("/audit", headers=admin).get_data(as_text=True)
    assert "No entries match these filters." in client.get("/audit?actor=nobody", headers=admin).get_data(as_text=True)


def test_the_cli_and_sign_ins_are_audited_too(app):
    app.test_cli_runner().invoke(users_group, ["add", "pia", "--role", "viewer", "--password-stdin"], input=PASSWORD)
    entry = db.session.execute(select(AuditEntry)).scalar_one()
    assert (entry.action, entry.target, entry.via) == ("users add", "user pia", "cli")


def test_a_create_and_its_audit_entry_commit_together_once(app, backend):
    """One entry per create, duplicate or not. On PostgreSQL a create writes its entry with the
    job (nothing is left to write after the commit the worker wakes on), so a create whose
    entry cannot be written creates nothing, where the entry used to follow the commit."""
    operator = token_of("sam", Role.OPERATOR)
    client = app.test_client()
    first = client.post("/api/jobs", json={"type": "mail", "unique_key": "k"},
                        headers=bearer(operator), environ_base={"REMOTE_ADDR": "10.9.8.7"})  # fmt: skip
    again = client.post("/api/jobs", json={"type": "mail", "unique_key": "k"}, headers=bearer(operator))
    plain = client.post("/api/jobs", json={"type": "mail"}, headers=bearer(operator))
    refused = client.post("/api/jobs", json={"type": "mail"}, headers=bearer(token_of("tia", Role.VIEWER)))
    assert [a.status_code for a in (first, again, plain, refused)] == [201, 200, 201, 403]
    entries = db.session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars().all()
    assert [(e.actor, e.action, e.outcome) for e in entries] == [("sam", "POST /api/jobs", "ok")] * 3 + [
        ("tia", "POST /api/jobs", "403 forbidden")]  # fmt: skip
    assert (entries[0].address, entries[0].target, entries[0].data) == ("10.9.8.7", None, None)
    assert entries[0].via.startswith("token:")
    db.session.rollback()
    if backend == "sqlite":
        return  # there the entry follows the commit (webapp.server.audit_trail)

    db.session.execute(text("ALTER TABLE audit_entries RENAME TO audit_entries_away"))
    db.session.commit()
    try:
        for spec in ({"type": "lost"}, {"type": "lost", "unique_key": "u"}):
            with pytest.raises(SQLAlchemyError):  # the database refuses the entry's INSERT
                client.post("/api/jobs", json=spec, headers=bearer(operator))
            db.session.rollback()
        assert db.session.execute(text("SELECT count(*) FROM jobs WHERE type = 'lost'")).scalar_one() == 0
    finally:
        db.session.rollback()
        db.session.execute(text("ALTER TABLE audit_entries_away RENAME TO audit_entries"))
        db.session.commit()


@postgresql_only
def test_a_create_request_writes_its_job_and_audit_entry_in_one_statement_on_postgresql(app):
    operator = token_of("uma", Role.OPERATOR)
    client = app.test_client()
    with statements_run(db.engine) as statements:
        assert client.post("/api/jobs", json={"type": "mail"}, headers=bearer(operator)).status_code == 201
    writes = [statement for statement, _ in statements if re.search(r"INSERT INTO (jobs|audit_entries)\b", statement)]
    assert len(writes) == 1 and "INSERT INTO audit_entries" in writes[0], writes  # not a second statement


def test_audit_entries_are_only_ever_appended(app):
    """No code path of the app updates or deletes an audit row (the module has one writer: `record`)."""
    import pathlib

    import webapp

    root = pathlib.Path(webapp.__file__).parent
    touching = [
        path.relative_to(root).as_posix()
        for path in root.rglob("*.py")
        if "AuditEntry" in path.read_text() and re.search(r"(update|delete)\(AuditEntry", path.read_text())
    ]
    assert touching == []


# --- viewers -----------------------------------------------------------------------------


def test_viewers_see_no_buttons_and_with_the_setting_no_payloads(app, app_config):
    from webapp import create_app

    viewer = token_of("quinn", Role.VIEWER)
    operator = token_of("rob", Role.OPERATOR)
    job = make_job("failed", payload={"email": "someone@example.com"})
    client = app.test_client()
    page = client.get(f"/jobs/{job.id}", headers=bearer(viewer)).get_data(as_text=True)
    assert "<button" not in page.split('id="recovery-card"')[1].split("</section>")[0]
    assert "someone@example.com" in page  # the setting is off by default

    hiding = create_app({**app_config, "JOBWARDEN_HIDE_PAYLOADS_FROM_VIEWERS": True})
    with hiding.app_context():
        hidden_client = hiding.test_client()
        for path in (f"/jobs/{job.id}", f"/api/jobs/{job.id}", "/api/jobs"):
            assert "someone@example.com" not in hidden_client.get(path, headers=bearer(viewer)).get_data(as_text=True)
            assert "someone@example.com" in hidden_client.get(path, headers=bearer(operator)).get_data(as_text=True)
        assert "someone@example.com" not in hidden_client.get(f"/jobs/{job.id}").get_data(as_text=True)
        db.session.remove()


def test_with_the_setting_viewers_get_no_logs(app, app_config):
    from webapp import create_app

    viewer = token_of("quinn", Role.VIEWER)
    operator = token_of("rob", Role.OPERATOR)
    job = make_job("failed", payload={})
    hiding = create_app({**app_config, "JOBWARDEN_HIDE_PAYLOADS_FROM_VIEWERS": True})
    with hiding.app_context():
        client = hiding.test_client()
        log_panel = {"HX-Request": "true", "HX-Target": "log"}  # the job page's log panel alone
        for path, extra in (
            (f"/api/jobs/{job.id}/log", {}),
            (f"/jobs/{job.id}/log", {}),
            (f"/jobs/{job.id}", log_panel),
        ):
            assert client.get(path, headers={**bearer(viewer), **extra}).status_code == 403
            assert client.get(path, headers={**bearer(operator), **extra}).status_code != 403
        assert 'data-testid="job-log"' not in client.get(f"/jobs/{job.id}", headers=bearer(viewer)).get_data(
            as_text=True
        )
        assert 'data-testid="job-log"' in client.get(f"/jobs/{job.id}", headers=bearer(operator)).get_data(as_text=True)
        db.session.remove()


def test_an_oidc_subject_longer_than_the_protocol_allows_is_refused_not_a_500(app):
    """OpenID Connect caps `sub` at 255 characters; a provider sending more is refused with a
    sign-in message (PostgreSQL's varchar(255) would otherwise raise)."""
    with pytest.raises(users.SignInRefused):
        users.oidc_sign_in("s" * 256, "longsub", Role.VIEWER)
    assert users.oidc_sign_in("s" * 255, "longsub", Role.VIEWER).name == "longsub"


def test_an_audit_cursor_past_the_id_range_is_a_400_naming_it_not_a_500(app):
    """Found by benchmarks/fuzz.py: `before` past 2^63 - 1 reached the store (SQLite cannot bind it)."""
    client = app.test_client()
    admin = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
    response = client.get(f"/api/audit?before={2**63}", headers=admin)
    assert response.status_code == 400 and "before" in response.get_data(as_text=True)
    assert client.get(f"/api/audit?before={2**63 - 1}", headers=admin).status_code == 200


def test_an_audit_time_no_utc_time_can_be_is_a_400_naming_it_not_a_500(app):
    """A zone east of UTC names 0001-01-01T00:00, and one west of it 9999-12-31T23:59, that
    UTC cannot: converting them raised. The nearest times UTC can be still answer."""
    client = app.test_client()
    admin = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
    for name, moment in (("since", "0001-01-01T00:00:00%2B14:00"), ("until", "9999-12-31T23:59:59-14:00")):
        response = client.get(f"/api/audit?{name}={moment}", headers=admin)
        assert response.status_code == 400 and response.json["field"] == name, response.get_data(as_text=True)
    for name, moment in (("since", "0001-01-01T00:00:00Z"), ("until", "9999-12-31T23:59:59Z")):
        assert client.get(f"/api/audit?{name}={moment}", headers=admin).status_code == 200


def test_a_nul_in_an_audit_filter_is_a_400_naming_it_not_a_500(app):
    """PostgreSQL text holds no NUL: the API's audit filters refuse it at the edge, as the page does."""
    client = app.test_client()
    admin = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
    for name in ("actor", "action", "target", "outcome"):
        response = client.get(f"/api/audit?{name}=a%00b", headers=admin)
        assert response.status_code == 400 and name in response.get_data(as_text=True), name


def test_an_oidc_callback_that_authlib_refuses_answers_401_with_authlib_loaded_on_demand(app, app_config):
    """webapp.server.oidc imports Authlib only when OpenID Connect is configured (in install and
    the callback); a callback with no sign-in under way is Authlib's refusal, shown as a 401."""
    from webapp import create_app

    settings = {
        "JOBWARDEN_OIDC_ISSUER": "http://127.0.0.1:9",  # never asked: no sign-in was started
        "JOBWARDEN_OIDC_CLIENT_ID": "jobwarden",
        "JOBWARDEN_OIDC_CLIENT_SECRET": "secret",
    }
    with_oidc = create_app({**app_config, **settings})
    answer = with_oidc.test_client().get("/login/oidc/callback?code=forged&state=forged")
    assert answer.status_code == 401
    assert "The sign-in failed" in answer.get_data(as_text=True)
