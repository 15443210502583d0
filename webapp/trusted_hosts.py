"""Which names the server answers to: the `Host` header is checked (Flask's TRUSTED_HOSTS).

Without a password anyone who reaches the port may act, and the cross-site checks
compare `Origin` with `Host`. A page on a name the attacker controls that resolves
to 127.0.0.1 (DNS rebinding) sends both as its own name, so they agree, and the
browser on the operator's machine would reach a server that trusts its loopback
port. Answering only to the names the server is reached by closes that: by default
the loopback names and the host of JOBWARDEN_PUBLIC_URL; JOBWARDEN_TRUSTED_HOSTS
adds more (comma-separated; `.example.com` matches its subdomains), or `*` answers
to any name (behind a proxy that checks it).
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1")
ANY_HOST = "*"


def trusted_hosts(configured: str | None, public_url: str | None) -> list[str] | None:
    """The TRUSTED_HOSTS list, or None (any name) when JOBWARDEN_TRUSTED_HOSTS is `*`."""
    names = [name.strip().lower() for name in (configured or "").split(",") if name.strip()]
    if ANY_HOST in names:
        return None
    public_host = urlsplit(public_url).hostname if public_url else None
    return list(dict.fromkeys([*LOOPBACK_NAMES, *([public_host] if public_host else []), *names]))
