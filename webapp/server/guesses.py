"""Wrong secrets are counted, and past the limit a secret is not even checked: 429 with
`Retry-After` instead.

The operator password is presented three ways (HTTP Basic on the API, HTTP Basic on a
dashboard form, /login) and all three draw on the same two allowances: one per client
address (JOBWARDEN_GUESS_RATE_LIMIT) and one for everybody together
(JOBWARDEN_GUESS_RATE_LIMIT_TOTAL), so spreading guesses over routes or addresses gains
nothing. Only wrong guesses count: an operator who types the password right is never
slowed down, until somebody is guessing, when the overall allowance stops everybody
presenting the password (a logged-in dashboard session keeps working).

The workers' internal key is a different secret: random and at least 16 characters
(webapp.auth), beyond guessing at any rate, and shared by every worker. Its wrong
guesses are limited per address only (JOBWARDEN_KEY_GUESS_RATE_LIMIT): an address that
sends wrong keys is refused, and workers elsewhere are never throttled by it.

Counts live in flask-limiter's storage (JOBWARDEN_RATELIMIT_STORAGE_URI; the default
`memory://` counts per server process, a shared store counts across replicas).
"""

from __future__ import annotations

import math
import time

from flask import current_app, request
from flask_limiter.util import get_remote_address
from limits import parse
from werkzeug.exceptions import TooManyRequests

from .extensions import limiter

PASSWORD = "password"
INTERNAL_KEY = "internal-key"
EVERYBODY = "*"


def _allowances(secret: str) -> list[tuple[str, str]]:
    """(setting, who) pairs: the limits that apply to guesses of `secret`."""
    if secret == INTERNAL_KEY:
        return [("JOBWARDEN_KEY_GUESS_RATE_LIMIT", get_remote_address())]
    return [("JOBWARDEN_GUESS_RATE_LIMIT", get_remote_address()), ("JOBWARDEN_GUESS_RATE_LIMIT_TOTAL", EVERYBODY)]


def refuse_when_exhausted(secret: str) -> None:
    """Raise 429 (with Retry-After) when this address, or everybody, has used up its wrong guesses."""
    for setting, who in _allowances(secret):
        item = parse(current_app.config[setting])
        if not limiter.limiter.test(item, "guesses", secret, who):
            reset_at, _remaining = limiter.limiter.get_window_stats(item, "guesses", secret, who)
            retry_after = max(1, math.ceil(reset_at - time.time()))
            whose = "from this address" if who != EVERYBODY else "from all addresses together"
            raise TooManyRequests(
                f"too many wrong {secret.replace('-', ' ')} guesses {whose} ({item}); retry in {retry_after} s",
                retry_after=retry_after,
            )


def count_wrong(secret: str) -> None:
    """One wrong guess, counted once per request however often the request checks it."""
    counted = request.environ.setdefault("jobwarden.wrong_guesses_counted", set())
    if secret in counted:
        return
    counted.add(secret)
    for setting, who in _allowances(secret):
        limiter.limiter.hit(parse(current_app.config[setting]), "guesses", secret, who)
