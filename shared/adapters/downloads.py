"""Fetching a file from a link someone else handed us (an import job's ``errors_url``).

The link is hostile input, and so is the server behind it. So a fetch:

- goes only to an allowed host (:class:`HostPolicy`): SendGrid's own, those a setting adds, and the
  API's own origin (where the simulator serves its files);
- connects only to an address checked after resolving: never loopback, private, link-local,
  cloud metadata or reserved, unless that exact host was listed by name (a local stand-in), and
  to that very address (so a second lookup cannot rebind it elsewhere);
- is https (or the API's own origin, whatever its scheme); no redirect is followed;
- ends by a wall-clock deadline however the server sends (a watchdog shuts the socket at the
  deadline, during the handshake, the headers or the body: one byte every half second is cut off
  on time, where per-read timeouts never fire), and at a size cap, counted as bytes arrive;
- never quotes the link in a message: its query string is a signature.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import certifi
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError
from urllib3.response import HTTPResponse

from shared.errors import ExportError
from shared.privacy import neutralise

# Where SendGrid serves its files. The host of ``errors_url`` is not documented (the contacts
# OpenAPI says only "the download URL of the file which provides information about any errors").
# SendGrid's other downloads are pre-signed links to its S3 buckets, named ``sendgrid-*``: the
# messages CSV (GET /v3/messages/download/{uuid} answers a ``presigned_url`` such as
# https://sendgrid-rts-development-csv-downloads.s3.us-west-2.amazonaws.com/<uuid>.csv?X-Amz-...),
# and contact exports ("the exported file on S3 will expire", GET /v3/marketing/contacts/exports/{id}).
# Plus SendGrid's own domains. A bucket name is no proof of its owner: the list narrows where a
# link may lead (public hosts only), it does not make a file trusted; the file is parsed as hostile.
SENDGRID_FILE_HOSTS = (
    "*.sendgrid.com",
    "*.sendgrid.net",
    "sendgrid-*.s3.amazonaws.com",
    "sendgrid-*.s3.*.amazonaws.com",
    "sendgrid-*.s3-*.amazonaws.com",
)
# Addresses that are public by their range yet reach a cloud platform's own services.
_METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("168.63.129.16"),  # Azure's WireServer (169.254.169.254 is link-local)
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud's metadata
    }
)

Resolver = Callable[[str, int], list[str]]


class DownloadError(ExportError):
    """A file was not fetched, or not whole; the message says why and never quotes the link."""


@dataclass(frozen=True)
class HostPolicy:
    """Which hosts a link may name. ``listed`` entries without a ``*`` are exact names: only
    those may resolve to a loopback or private address (a local stand-in, named on purpose)."""

    listed: tuple[str, ...] = SENDGRID_FILE_HOSTS
    own_origin: tuple[str, str, int] | None = None  # (scheme, host, port) of the API itself

    def permits(self, host: str) -> bool:
        return any(_matches(pattern, host) for pattern in self.listed)

    def named_exactly(self, host: str) -> bool:
        return any("*" not in pattern and pattern.lower() == host for pattern in self.listed)


def _matches(pattern: str, host: str) -> bool:
    pattern = pattern.lower()
    if "*" not in pattern:
        return pattern == host
    any_subdomain = pattern.startswith("*.")
    body = re.escape(pattern[2:] if any_subdomain else pattern).replace(r"\*", "[a-z0-9-]+")
    return re.fullmatch(("(?:[a-z0-9-]+\\.)+" if any_subdomain else "") + body, host) is not None


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Limits:
    """The bounds of one download: its size, its wall-clock time (on ``clock``), each read's."""

    max_bytes: int
    seconds: float  # the whole fetch, wall-clock
    read_timeout: float = 30.0  # connecting, and each read
    clock: Callable[[], float] = time.monotonic  # what ``seconds`` is measured on


def fetch(
    url: str,
    policy: HostPolicy,
    limits: Limits,
    *,
    what: str = "the file",
    headers: dict[str, str] | None = None,
    resolver: Resolver = resolve,
) -> bytes:
    """The body of ``url`` (a 200 answer), within ``limits``; :class:`DownloadError` otherwise."""
    clock = limits.clock
    give_up = clock() + limits.seconds
    target = _checked_target(url, policy, what)
    address = _checked_address(target, policy, resolver, what)
    left = give_up - clock()
    if left <= 0:  # the lookup took it all
        raise DownloadError(f"{what} took over {limits.seconds:.0f}s; it was not read.")
    cut = threading.Event()
    connection = _connection(target, address, min(limits.read_timeout, left))
    # The watchdog: shuts the socket at the deadline, whatever call is blocked on it.
    watchdog = threading.Timer(left, _cut_off, (connection, cut))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.connect()
        if cut.is_set():  # it fired while connecting, before there was a socket to shut
            raise TimeoutError
        response = _get(connection, target, headers or {})
        if cut.is_set():  # the headers were cut short, so they seemed to end
            raise TimeoutError
        if response.status != 200:  # a redirect too: never followed
            raise DownloadError(f"{what} answered {response.status}; it was not read.")
        body = _read_body(response.read1, limits, what)
        if cut.is_set():  # a body without a length, cut short, seemed to end
            raise TimeoutError
        return body
    except DownloadError:
        raise
    except (OSError, HTTPError, http.client.HTTPException, ValueError) as exc:
        if cut.is_set() or clock() >= give_up:
            raise DownloadError(f"{what} took over {limits.seconds:.0f}s; it was not read.") from None
        raise DownloadError(f"{what} could not be fetched ({type(exc).__name__}).") from None
    finally:
        watchdog.cancel()
        connection.close()


def _get(connection: HTTPConnection, target: SplitResult, headers: dict[str, str]) -> HTTPResponse:
    """A GET of ``target`` on the connected ``connection``; its body is left unread."""
    connection.request(
        "GET",
        (target.path or "/") + (f"?{target.query}" if target.query else ""),
        headers={"Host": target.netloc, "Accept-Encoding": "identity", **headers},
        preload_content=False,  # read below, piece by piece, counted
        decode_content=False,  # a Content-Encoding is not inflated here (the parser bounds that)
    )
    return connection.getresponse()


def checked_connection(
    url: str, policy: HostPolicy, timeout: float, *, what: str, resolver: Resolver = resolve
) -> tuple[SplitResult, HTTPConnection]:
    """A connection to ``url``'s host under the same checks as :func:`fetch` (allowed host, https
    or the API's own origin, an address checked after resolving and connected to as checked):
    for a request other than a GET (an import's upload)."""
    target = _checked_target(url, policy, what)
    address = _checked_address(target, policy, resolver, what)
    return target, _connection(target, address, timeout)


def _read_body(read1: Callable[[int], bytes], limits: Limits, what: str) -> bytes:
    data = bytearray()
    while True:
        # read1: what one receive brings, not "all of 64 KiB": a trickle cannot hold one call.
        piece = read1(1 << 16)
        if not piece:
            return bytes(data)
        data += piece
        if len(data) > limits.max_bytes:
            raise DownloadError(f"{what} is over {limits.max_bytes} bytes; it was not read.")


def _cut_off(connection: HTTPConnection, cut: threading.Event) -> None:
    cut.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: nothing is blocked on it
            sock.shutdown(socket.SHUT_RDWR)


def _checked_target(url: str, policy: HostPolicy, what: str) -> SplitResult:
    try:
        target = urlsplit(url)
        host, port = (target.hostname or "").lower(), target.port
    except ValueError:
        raise DownloadError(f"{what} link is not a URL; it was not fetched.") from None
    own = policy.own_origin
    is_own = own is not None and (target.scheme, host, port or _default_port(target.scheme)) == own
    if target.scheme != "https" and not is_own:
        raise DownloadError(f"{what} link is not https; it was not fetched.")
    if not host or target.username is not None or target.password is not None:
        raise DownloadError(f"{what} link names no host (or carries credentials); it was not fetched.")
    if not is_own and not policy.permits(host):
        raise DownloadError(
            f"{what} link names host {_shown(host)}, not one SendGrid serves files from "
            "(SENDGRID_ERRORS_FILE_HOSTS adds hosts); it was not fetched."
        )
    # SendGrid's files are served on 443; another port of a public host is someone's other service.
    if not is_own and not policy.named_exactly(host) and port not in (None, 443):
        raise DownloadError(f"{what} link names port {port}, not 443; it was not fetched.")
    return target


def _checked_address(target: SplitResult, policy: HostPolicy, resolver: Resolver, what: str) -> str:
    host = (target.hostname or "").lower()
    port = target.port or _default_port(target.scheme)
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError):
        raise DownloadError(f"{what} host {_shown(host)} could not be resolved.") from None
    if not addresses:
        raise DownloadError(f"{what} host {_shown(host)} could not be resolved.")
    own = policy.own_origin
    trusted = policy.named_exactly(host) or (own is not None and own[1:] == (host, port))
    if not trusted:
        private = [a for a in addresses if not _public(a)]
        if private:
            raise DownloadError(
                f"{what} host {_shown(host)} resolves to {private[0]}, a loopback, private, link-local, "
                "metadata or reserved address; it was not fetched."
            )
    return addresses[0]


def _shown(host: str) -> str:
    """A host named in a message: outside text, so neutralised, and short."""
    return neutralise(host[:100])


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return all(a.is_global and not a.is_multicast and a not in _METADATA_ADDRESSES for a in _as_reached(ip))


# IPv6 ranges that carry an IPv4 address in their last 32 bits, which a translator or relay then
# reaches: NAT64 (RFC 6052, RFC 8215) and the deprecated IPv4-compatible form. 64:ff9b::a9fe:a9fe
# is the metadata address, and Python calls it global.
_IPV4_CARRIERS = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96"))


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _as_reached(ip: _Address) -> list[_Address]:
    """``ip``, and the IPv4 address it leads to when it embeds one (mapped, NAT64, 6to4)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return [ip]
    embedded = [ip.ipv4_mapped, ip.sixtofour]
    if any(ip in network for network in _IPV4_CARRIERS):
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [ip, *(e for e in embedded if e is not None)]


def _connection(target: SplitResult, address: str, timeout: float) -> HTTPConnection:
    """A connection to the checked address, speaking to (and verifying) the host by its name."""
    port = target.port or _default_port(target.scheme)
    if target.scheme == "https":
        host = (target.hostname or "").lower()
        return HTTPSConnection(
            address,
            port,
            timeout=timeout,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=_ca_bundle(),
        )
    return HTTPConnection(address, port, timeout=timeout)


def _ca_bundle() -> str:
    # As requests does: an operator's bundle (a proxy's CA, a local stand-in's) first.
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def host_policy(extra_hosts: Iterable[str], api_base_url: str | None) -> HostPolicy:
    """SendGrid's hosts plus ``extra_hosts``; the API's own origin (the simulator's, in tests)."""
    own = None
    if api_base_url:
        base = urlsplit(api_base_url)
        if base.hostname:
            own = (base.scheme, base.hostname.lower(), base.port or _default_port(base.scheme))
    return HostPolicy(SENDGRID_FILE_HOSTS + tuple(h.lower() for h in extra_hosts), own)
