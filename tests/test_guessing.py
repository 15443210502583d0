"""Every way of presenting a secret is rate-limited (webapp/server/guesses.py): HTTP Basic on the
API and on dashboard forms and /login share one allowance for wrong passwords per address
and one overall; wrong internal keys are limited per address. Past the limit the answer is
429 with Retry-After, and the secret is not even checked.

Before: 300 wrong `-u x:guess` requests to /api/webhooks got 300 × 401 at ~880 guesses/s.
"""

from __future__ import annotations

import base64
import re

import pytest

from tests.conftest import INTERNAL_KEY

PASSWORD = "correct horse battery staple"
PER_ADDRESS = 3
OVERALL = 5


@pytest.fixture
def app_config(app_config):
    return {
        **app_config,
        "JOBWARDEN_ADMIN_PASSWORD": PASSWORD,
        "JOBWARDEN_GUESS_RATE_LIMIT": f"{PER_ADDRESS} per minute",
        "JOBWARDEN_GUESS_RATE_LIMIT_TOTAL": f"{OVERALL} per minute",
        "JOBWARDEN_KEY_GUESS_RATE_LIMIT": f"{PER_ADDRESS} per minute",
        "JOBWARDEN_LOGIN_RATE_LIMIT": "100 per minute",  # the route's own limit out of the way
    }


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"x:{password}".encode()).decode()}


def from_address(address: str) -> dict[str, str]:
    return {"REMOTE_ADDR": address}


def api_guess(client, password: str, address: str = "10.0.0.1"):
    return client.get("/api/webhooks", headers=basic(password), environ_base=from_address(address))


def create_guess(client, password: str, address: str = "10.0.0.1"):
    return client.post("/api/jobs", json={"type": "x"}, headers=basic(password), environ_base=from_address(address))


def login_guess(client, password: str, address: str = "10.0.0.1"):
    html = client.get("/login", environ_base=from_address(address)).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    return client.post("/login", data={"password": password, "csrf_token": token}, environ_base=from_address(address))


def assert_refused_for_a_while(answer) -> None:
    assert answer.status_code == 429, answer.get_data(as_text=True)
    assert 1 <= int(answer.headers["Retry-After"]) <= 60


@pytest.mark.parametrize("guess", [api_guess, create_guess, login_guess], ids=["webhooks", "jobs", "login"])
def test_wrong_passwords_are_limited_per_address_and_then_even_the_right_one_waits(client, guess):
    assert [guess(client, "wrong").status_code for _ in range(PER_ADDRESS)] == [401] * PER_ADDRESS
    assert_refused_for_a_while(guess(client, "wrong"))
    assert_refused_for_a_while(guess(client, PASSWORD))  # not even checked: a guess would learn nothing
    assert guess(client, PASSWORD, address="10.0.0.2").status_code in (200, 201, 302)  # other addresses go on


def test_the_routes_share_one_allowance_and_all_addresses_one_overall(client):
    guesses = [api_guess, create_guess, login_guess, api_guess, create_guess]
    answers = [guess(client, "wrong", address=f"10.0.1.{n}").status_code for n, guess in enumerate(guesses)]
    assert answers == [401] * OVERALL  # five addresses, one wrong guess each
    assert_refused_for_a_while(api_guess(client, "wrong", address="10.0.2.1"))  # a new address: overall exhausted
    assert_refused_for_a_while(login_guess(client, PASSWORD, address="10.0.2.2"))


def test_a_right_password_never_counts(client):
    for _ in range(OVERALL * 2):
        assert api_guess(client, PASSWORD).status_code == 200


def key(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def claim(client, bearer: str, address: str):
    return client.post(
        "/api/internal/jobs/claim", json={"worker_id": "w1"}, headers=key(bearer), environ_base=from_address(address)
    )


def test_wrong_internal_keys_are_limited_per_address_and_workers_elsewhere_go_on(client):
    assert [claim(client, "wrong-key", "10.0.3.1").status_code for _ in range(PER_ADDRESS)] == [401] * PER_ADDRESS
    assert_refused_for_a_while(claim(client, "wrong-key", "10.0.3.1"))
    assert_refused_for_a_while(claim(client, INTERNAL_KEY, "10.0.3.1"))
    for worker in range(OVERALL * 2):  # no overall allowance for the key: no worker is throttled by a guesser
        assert claim(client, INTERNAL_KEY, f"10.0.4.{worker}").status_code == 200
