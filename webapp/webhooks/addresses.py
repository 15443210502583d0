"""Which receivers may be called: never loopback, private, link-local (cloud metadata) or reserved
addresses, unless JOBWARDEN_WEBHOOK_ALLOW_PRIVATE=1. Checked when an endpoint is added and again
before every delivery, since what a name resolves to can change."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class AddressRefused(ValueError):
    """The URL cannot be used as a webhook receiver; the message says why."""


def check_url_shape(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise AddressRefused("must not carry a user name or password")
    try:
        _port = parts.port  # urlsplit checks the port only when asked
    except ValueError:
        raise AddressRefused("has an invalid port") from None


def _kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-public"


def resolve(url: str, *, allow_private: bool) -> str:
    """The address a delivery connects to: the first the URL's host resolves to, once every
    one was found public (unless private addresses are allowed). Connecting to this address,
    not to the name again, closes the window in which the name could be re-pointed."""
    check_url_shape(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise AddressRefused(f"cannot resolve {host}: {error}") from None
    if not infos:
        raise AddressRefused(f"cannot resolve {host}: no address")
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        for found in addresses:
            address = ipaddress.ip_address(found.split("%", 1)[0])
            kind = _kind(address)
            if kind:
                raise AddressRefused(
                    f"{host} resolves to {address}, a {kind} address (set JOBWARDEN_WEBHOOK_ALLOW_PRIVATE=1 to allow)"
                )
    return addresses[0]


def check_public(url: str) -> None:
    """Raise AddressRefused unless every address the URL's host resolves to is public."""
    resolve(url, allow_private=False)
