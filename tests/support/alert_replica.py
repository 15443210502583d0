"""A monitor replica's alert evaluation in a process of its own, for the race and kill tests.

`python -m tests.support.alert_replica DATABASE_URL NOW_ISO START_AT MODE`: waits until
the wall clock reaches START_AT (so all replicas begin together), evaluates the rules
as the monitor's pass does (without the pass's advisory lock: the statements alone
must decide), then commits (`commit`), or says it is done and hangs before committing
(`hang`) so the test can kill -9 it mid-pass. `remove:RULE_ID` removes that rule instead,
as the API does, and `disable:RULE_ID` disables it. Alerts resolve at the first pass below the threshold here."""

from __future__ import annotations

import sys
import time
from datetime import datetime


def main(database_url: str, now_iso: str, start_at: float, mode: str) -> None:
    from webapp import create_app
    from webapp.jobs.alert_rules import RuleNotFound
    from webapp.monitor.alerting import alert_settings, evaluate, remove_rule, set_enabled
    from webapp.store.extensions import db

    from tests.conftest import test_config

    app = create_app(test_config(database_url, JOBWARDEN_ALERT_RESOLVE_AFTER_S=0.0))
    with app.app_context():
        db.session.connection()  # connected before the start, so the replicas race the statements
        time.sleep(max(0.0, start_at - time.time()))
        if mode.startswith("remove:"):
            try:
                resolved = remove_rule(int(mode.removeprefix("remove:")), datetime.fromisoformat(now_iso))
            except RuleNotFound:
                print("not found", flush=True)
                return
            print("removed", ",".join(map(str, resolved)), flush=True)
            return
        if mode.startswith("disable:"):
            resolved = set_enabled(int(mode.removeprefix("disable:")), False, datetime.fromisoformat(now_iso))
            print("disabled", ",".join(map(str, resolved)), flush=True)
            return
        outcome = evaluate(datetime.fromisoformat(now_iso), alert_settings())
        if mode == "hang":
            db.session.flush()
            print("evaluated", flush=True)
            time.sleep(3600)
        db.session.commit()
        print("fired", ",".join(map(str, outcome.fired)), "resolved", ",".join(map(str, outcome.resolved)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4])
