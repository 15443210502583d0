"""Which receivers may be called: never loopback, private, link-local (cloud metadata) or reserved
addresses, unless JOBWARDEN_WEBHOOK_ALLOW_PRIVATE=1. Checked when an endpoint is added and again
before every delivery, since what a name resolves to can change."""

from __future__ import annotations

import ipaddress
import socket
import threading
from urllib.parse import urlsplit

RESOLVE_TIMEOUT_S = 5.0  # an endpoint's name looked up when it is added


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


NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and reaches: mapped (::ffff:a.b.c.d), 6to4
    (2002:AABB:CCDD::, a relay delivers to a.b.c.d), Teredo's client, NAT64 (64:ff9b::a.b.c.d)."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)) is not None:
        embedded_kind = _kind(embedded)
        if embedded_kind:
            return f"{embedded_kind} (as {embedded})"
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-public"


def resolve(url: str, *, allow_private: bool, timeout_s: float = RESOLVE_TIMEOUT_S) -> str:
    """The address a delivery connects to: the first the URL's host resolves to, once every
    one was found public (unless private addresses are allowed). Connecting to this address,
    not to the name again, closes the window in which the name could be re-pointed."""
    check_url_shape(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = _getaddrinfo_within(host, port, timeout_s)
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


def _getaddrinfo_within(host: str, port: int, timeout_s: float) -> list:
    """getaddrinfo has no timeout of its own: a resolver that never answers would hold a
    delivery (and its lease) or a request as long as it likes. The lookup runs in a thread
    of its own; past `timeout_s` the caller goes on and the thread ends when the resolver does."""
    found: list = []
    failures: list[BaseException] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP))
        except (OSError, UnicodeError) as error:
            failures.append(error)
        finally:
            done.set()

    threading.Thread(target=look_up, name="webhook-resolve", daemon=True).start()
    if not done.wait(timeout_s):
        raise AddressRefused(f"cannot resolve {host}: no answer within {timeout_s:g} s")
    if failures:
        raise AddressRefused(f"cannot resolve {host}: {failures[0]}")
    return found


def check_public(url: str) -> None:
    """Raise AddressRefused unless every address the URL's host resolves to is public."""
    resolve(url, allow_private=False)
