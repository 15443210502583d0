"""Whether anybody must sign in, decided per request without asking the database each time
once a user exists (users are never deleted), and never remembered while none exists: another
replica or the command line may add the first user at any moment."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from webapp import create_app
from webapp.domain.roles import Role
from webapp.jobs import users
from webapp.store.extensions import db

PASSWORD = "twelve chars at least"


@contextmanager
def user_queries(app):
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if "FROM users" in statement:
            seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def create(client):
    return client.post("/api/jobs", json={"type": "demo.noop"}).status_code


def test_the_first_user_added_by_another_replica_closes_the_install_at_once(app, app_config):
    client = app.test_client()
    assert create(client) == 201  # open: nobody to sign in as
    other_replica = create_app(app_config)
    with other_replica.app_context():
        users.add_user("pia", Role.ADMIN, PASSWORD)
        db.session.commit()
    assert create(client) == 401


def test_once_a_user_exists_requests_ask_the_database_no_more(app):
    users.add_user("pia", Role.ADMIN, PASSWORD)
    db.session.commit()
    client = app.test_client()
    assert create(client) == 401
    with user_queries(app) as seen:
        assert [create(client) for _ in range(3)] == [401] * 3
    assert seen == []


def test_with_every_user_disabled_the_install_stays_closed(app):
    users.add_user("pia", Role.ADMIN, PASSWORD)
    users.disable_user("pia")
    db.session.commit()
    assert create(app.test_client()) == 401
