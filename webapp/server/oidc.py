"""Sign-in through an OpenID Connect provider (authorization code with PKCE), by Authlib.

On when JOBWARDEN_OIDC_ISSUER, _CLIENT_ID and _CLIENT_SECRET are set. Authlib reads the
provider's discovery document, sends the state, nonce and S256 code challenge, and checks
the ID token's signature, issuer, audience and nonce on the way back. The person's role
comes from the claim JOBWARDEN_OIDC_ROLE_CLAIM (a role name or a list of them; the highest
wins; none named: viewer), read from the ID token or, failing that, from the userinfo
endpoint, and follows the provider on every sign-in. The account is made on the first
sign-in (webapp.jobs.users.oidc_sign_in) so that it can be disabled here and own tokens.

Authlib (with requests, urllib3 and joserfc, about 18 MiB resident) is imported only when
OpenID Connect is configured: a server without it never loads them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, redirect, render_template, request, session, url_for

from ..domain.roles import Role, highest_role
from ..jobs import users
from . import auth

bp = Blueprint("oidc", __name__)
EXTENSION = "jobwarden.oidc"
SETTINGS = ("JOBWARDEN_OIDC_ISSUER", "JOBWARDEN_OIDC_CLIENT_ID", "JOBWARDEN_OIDC_CLIENT_SECRET")
NEXT_KEY = "oidc_next"


def enabled() -> bool:
    return EXTENSION in current_app.extensions


def install(app: Flask) -> None:
    """Register the provider when all three settings are given (a ConfigError names a missing one)."""
    given = [name for name in SETTINGS if app.config[name]]
    if not given:
        return
    if len(given) < len(SETTINGS):
        from ..config import ConfigError

        missing = ", ".join(name for name in SETTINGS if name not in given)
        raise ConfigError(f"OpenID Connect needs {', '.join(SETTINGS)}; {missing} is not set")
    from authlib.integrations.flask_client import OAuth

    oauth = OAuth()
    oauth.init_app(app)
    oauth.register(
        "oidc",
        client_id=app.config["JOBWARDEN_OIDC_CLIENT_ID"],
        client_secret=app.config["JOBWARDEN_OIDC_CLIENT_SECRET"],
        server_metadata_url=app.config["JOBWARDEN_OIDC_ISSUER"] + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile", "code_challenge_method": "S256"},
    )
    app.extensions[EXTENSION] = oauth


def _client() -> Any:
    return current_app.extensions[EXTENSION].create_client("oidc")


def local_path(target: str | None) -> str | None:
    """`target` if it is a path on this site (never another site: no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


@bp.get("/login/oidc")
def start():
    if not enabled():
        return redirect(url_for("dashboard.login"))
    session[NEXT_KEY] = local_path(request.args.get("next"))
    return _client().authorize_redirect(url_for("oidc.callback", _external=True))


@bp.get("/login/oidc/callback")
def callback():
    if not enabled():
        return redirect(url_for("dashboard.login"))
    from authlib.integrations.base_client.errors import OAuthError  # loaded by install() already

    client = _client()
    try:
        token = client.authorize_access_token()
        claims = dict(token.get("userinfo") or {})
        role_claim = current_app.config["JOBWARDEN_OIDC_ROLE_CLAIM"]
        if role_claim not in claims:
            claims.update(client.userinfo(token=token))
    except OAuthError as error:
        return render_template("login.html", error=f"The sign-in failed: {error.description or error.error}."), 401
    name = str(claims.get(current_app.config["JOBWARDEN_OIDC_NAME_CLAIM"]) or claims["sub"])
    role = highest_role(claims.get(role_claim)) or Role.VIEWER
    try:
        person = users.oidc_sign_in(str(claims["sub"]), name, role)
    except (users.SignInRefused, users.BadQuery) as refused:
        return render_template("login.html", error=f"Not signed in: {refused}."), 403
    next_path = session.pop(NEXT_KEY, None)
    auth.start_session(auth.Principal(name=person.name, role=person.role, via="oidc", user_id=person.id))
    return redirect(local_path(next_path) or url_for("dashboard.job_list"))
