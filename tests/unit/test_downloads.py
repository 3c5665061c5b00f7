"""Fetching an errors file: only from allowed hosts and public addresses, and within a wall-clock
deadline however slowly the server sends (a real loopback server that trickles)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

import shared.adapters.sendgrid as sendgrid_module
from shared.adapters.downloads import DownloadError, HostPolicy, Limits, fetch, host_policy
from shared.adapters.retry import RetryPolicy
from shared.adapters.sendgrid import ClientTuning, SendGridClient
from shared.errors import SendGridError
from shared.settings import Settings, SettingsError

KEY = "SG.downloadtestkey123.downloadtestsecret456789"


@contextmanager
def raw_server(talk: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback server that answers each connection with ``talk`` (for at most a few seconds)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                with contextlib.suppress(OSError):  # the client hung up: a cut-off, seen from here
                    talk(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def trickle(head: bytes, drip: bytes, every: float = 0.2, for_seconds: float = 8.0) -> Callable[[socket.socket], None]:
    def talk(conn: socket.socket) -> None:
        conn.sendall(head)
        ends = time.monotonic() + for_seconds
        while time.monotonic() < ends:
            conn.sendall(drip)
            time.sleep(every)

    return talk


def answer(status: str, body: bytes, extra: bytes = b"") -> Callable[[socket.socket], None]:
    def talk(conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n".encode() + extra + b"\r\n" + body)

    return talk


BODY_TRICKLE = trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"x")
HEADER_TRICKLE = trickle(b"HTTP/1.1 200 OK\r\n", b"X-Slow: y\r\n")
CHUNK_TRICKLE = trickle(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"f")


@pytest.mark.parametrize("talk", [BODY_TRICKLE, HEADER_TRICKLE, CHUNK_TRICKLE], ids=["body", "headers", "chunk-size"])
def test_a_server_that_trickles_is_cut_off_at_the_deadline_not_when_it_stops(monkeypatch, talk):
    monkeypatch.setattr(sendgrid_module, "ERRORS_FILE_SECONDS", 1.5)
    with raw_server(talk) as origin:
        client = SendGridClient(origin, KEY)
        started = time.monotonic()
        with pytest.raises(SendGridError, match=r"took over 2s"):
            client.download_errors_file(f"{origin}/__sim/files/job/errors?X-Signature=secret")
        elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 2.5  # the server would have sent for 8 s


def test_the_run_deadline_cuts_a_download_shorter(monkeypatch):
    with raw_server(BODY_TRICKLE) as origin:
        client = SendGridClient(origin, KEY)
        client.deadline = time.time() + 1.0
        started = time.monotonic()
        with pytest.raises(SendGridError, match="took over"):
            client.download_errors_file(f"{origin}/f")
        assert time.monotonic() - started < 2.0


def test_a_file_over_the_cap_is_refused_as_it_arrives(monkeypatch):
    monkeypatch.setattr(sendgrid_module, "ERRORS_FILE_MAX_BYTES", 100_000)
    with raw_server(answer("200 OK", b"e" * 300_000)) as origin, pytest.raises(SendGridError, match="over 100000"):
        SendGridClient(origin, KEY).download_errors_file(f"{origin}/f")


def test_a_redirect_is_not_followed():
    redirect = answer("302 Found", b"", b"Location: http://169.254.169.254/\r\n")
    with raw_server(redirect) as origin, pytest.raises(SendGridError, match="answered 302"):
        SendGridClient(origin, KEY).download_errors_file(f"{origin}/f")


def test_the_file_is_read_whole_from_the_apis_own_origin():
    with raw_server(answer("200 OK", b"email,error\na@example.com,bad\n")) as origin:
        assert SendGridClient(origin, KEY).download_errors_file(f"{origin}/f") == b"email,error\na@example.com,bad\n"


def resolving(table: dict[str, list[str]]):
    seen: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        seen.append(host)
        return table[host]

    return resolver, seen


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://169.254.169.254/latest/meta-data/", "not one SendGrid serves files from"),
        ("https://evil.example.com/errors.csv", "not one SendGrid serves files from"),
        ("https://sendgrid.com.evil.example.com/e.csv", "not one SendGrid serves files from"),
        ("file:///etc/passwd", "not https"),
        ("http://files.sendgrid.net/e.csv", "not https"),
        ("https://user:pw@files.sendgrid.net/e.csv", "carries credentials"),
        ("https://[::1", "not a URL"),
        ("https://files.sendgrid.net:22/e.csv", "names port 22, not 443"),
        ("https://sendgrid-x.s3.amazonaws.com:6379/e.csv", "names port 6379, not 443"),
    ],
)
def test_a_link_to_a_host_sendgrid_does_not_serve_files_from_is_refused_before_any_lookup(url, why):
    resolver, seen = resolving({})
    with pytest.raises(DownloadError, match=why):
        fetch(url, HostPolicy(), Limits(1000, 5), resolver=resolver)
    assert seen == []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "192.168.0.9", "169.254.169.254", "168.63.129.16", "::1", "::ffff:127.0.0.1",
        "100.64.0.1", "fe80::1%eth0", "fd00:ec2::254", "0.0.0.0",  # noqa: S104 (an address refused, not bound)
        # IPv4 carried in IPv6, reached through a translator or relay: NAT64, 6to4, IPv4-compatible
        "64:ff9b::a9fe:a9fe", "64:ff9b:1::a00:1", "2002:7f00:1::1", "::127.0.0.1",
    ],
)  # fmt: skip
def test_an_allowed_host_that_resolves_to_a_private_or_metadata_address_is_refused(address):
    resolver, _ = resolving({"sendgrid-imports.s3.us-east-1.amazonaws.com": ["52.1.2.3", address]})
    with pytest.raises(DownloadError, match=re.escape(f"resolves to {address}")):
        url = "https://sendgrid-imports.s3.us-east-1.amazonaws.com/e.csv"
        fetch(url, HostPolicy(), Limits(1000, 5), resolver=resolver)


def test_only_a_host_named_exactly_by_the_setting_may_be_loopback():
    policy = host_policy(("files.test", "*.wild.test"), "https://api.sendgrid.com")
    resolver, _ = resolving({"files.test": ["127.0.0.1"], "a.wild.test": ["127.0.0.1"]})
    with pytest.raises(DownloadError, match=r"resolves to 127\.0\.0\.1"):
        fetch("https://a.wild.test/e", policy, Limits(1000, 5), resolver=resolver)
    # Named exactly: connected to (port 1 on loopback is closed: "could not be fetched", not refused).
    with pytest.raises(DownloadError, match="could not be fetched"):
        fetch("https://files.test:1/e", policy, Limits(1000, 5), resolver=resolver)


def test_another_port_of_the_apis_own_host_is_not_its_origin():
    with raw_server(answer("200 OK", b"x")) as origin:
        client = SendGridClient(origin, KEY)
        with pytest.raises(SendGridError, match="not https"):
            client.download_errors_file("http://127.0.0.1:9/f")
        with pytest.raises(SendGridError, match="not one SendGrid serves files from"):
            client.download_errors_file("https://127.0.0.1:9/f")


def test_the_setting_adds_hosts_and_refuses_what_is_no_host():
    base = {"EXPORT_STORAGE": "UseDevelopmentStorage=true", "SECRETS_SOURCE": "environment"}
    assert Settings.from_env(base).errors_file_hosts == ()
    extended = Settings.from_env({**base, "SENDGRID_ERRORS_FILE_HOSTS": " Files.Example.com, *.cdn.test,10.0.0.5 "})
    assert extended.errors_file_hosts == ("files.example.com", "*.cdn.test", "10.0.0.5")
    for bad in ("https://files.example.com", "files.example.com:443", "files.example.com/x", "a b"):
        with pytest.raises(SettingsError, match="SENDGRID_ERRORS_FILE_HOSTS"):
            Settings.from_env({**base, "SENDGRID_ERRORS_FILE_HOSTS": bad})


def test_a_host_named_in_a_message_is_neutralised():
    with pytest.raises(DownloadError) as caught:
        fetch("https://evil\x1bc\x9b2J.example.com/e", HostPolicy(), Limits(1000, 5), resolver=resolving({})[0])
    assert not {"\x1b", "\x9b"} & set(str(caught.value)) and "not one SendGrid serves files from" in str(caught.value)


# -- every call to the API: the same wall-clock bound on its answer ---------------------------------


@pytest.mark.parametrize("talk", [BODY_TRICKLE, HEADER_TRICKLE, CHUNK_TRICKLE], ids=["body", "headers", "chunk-size"])
def test_an_api_answer_that_trickles_ends_the_call_by_its_timeouts_not_when_the_server_stops(talk):
    with raw_server(talk) as origin:
        client = SendGridClient(origin, KEY, ClientTuning(policy=RetryPolicy(max_attempts=1), timeout=(0.5, 1.0)))
        started = time.monotonic()
        with pytest.raises(SendGridError, match="could not be reached after 1 attempts"):
            client.scopes()
        elapsed = time.monotonic() - started
    assert elapsed < 2.2  # connect + read timeouts (1.5 s) from sending; the server would send for 8 s


def test_an_api_answer_over_its_cap_is_refused(monkeypatch):
    monkeypatch.setattr(sendgrid_module, "ANSWER_MAX_BYTES", 100_000)
    with raw_server(answer("200 OK", b'{"scopes": ["' + b"s" * 300_000 + b'"]}')) as origin:
        client = SendGridClient(origin, KEY, ClientTuning(policy=RetryPolicy(max_attempts=1)))
        with pytest.raises(SendGridError, match="AnswerTooLarge"):
            client.scopes()


def test_answers_in_time_are_read_whole_over_a_kept_alive_connection():
    body = b'{"scopes": ["marketing.read"]}'
    talk = answer("200 OK", body)

    def twice(conn: socket.socket) -> None:
        talk(conn)
        conn.recv(65536)  # the second request, on the same connection
        talk(conn)

    with raw_server(twice) as origin:
        client = SendGridClient(origin, KEY, ClientTuning(policy=RetryPolicy(max_attempts=1)))
        assert client.scopes() == ["marketing.read"] and client.scopes() == ["marketing.read"]


def test_a_lookup_that_takes_the_whole_deadline_leaves_no_unwatched_download():
    """The watchdog fired before there was a socket to shut: the trickle that followed went on."""

    def slow_lookup(host: str, port: int) -> list[str]:
        time.sleep(1.2)
        return ["127.0.0.1"]

    with raw_server(HEADER_TRICKLE) as origin:
        policy = HostPolicy(own_origin=("http", "127.0.0.1", int(origin.rsplit(":", 1)[1])))
        started = time.monotonic()
        with pytest.raises(DownloadError, match="took over 1s"):
            fetch(f"{origin}/f", policy, Limits(1000, 1.0), resolver=slow_lookup)
        assert time.monotonic() - started < 2.0  # the server would have sent for 8 s


def test_an_answer_with_too_many_headers_is_a_clear_error_not_a_traceback():
    def many_headers(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 1000 + b"\r\n")

    with raw_server(many_headers) as origin:
        policy = HostPolicy(own_origin=("http", "127.0.0.1", int(origin.rsplit(":", 1)[1])))
        with pytest.raises(DownloadError, match=r"could not be fetched \(HTTPException\)"):
            fetch(f"{origin}/f", policy, Limits(1000, 5), resolver=lambda host, port: ["127.0.0.1"])


# -- ids from SendGrid's answers placed in a call's path ------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.remove_from_list("x/../../contacts?delete_all_contacts=true&a=", ["id-1"]),
        lambda c: c.remove_from_list("..", ["id-1"]),
        lambda c: c.get_list("x/../../../v3/scopes"),
        lambda c: c.import_status("../lists/x#"),
    ],
)
def test_an_id_that_would_lead_a_call_elsewhere_is_refused_before_any_call(call):
    """requests removes dot segments: the first DELETE went to /v3/marketing/contacts?delete_all_contacts=true."""
    requests_seen: list[bytes] = []

    def record(conn: socket.socket) -> None:
        requests_seen.append(b"request")
        answer("204 No Content", b"")(conn)

    with raw_server(record) as origin:
        client = SendGridClient(origin, KEY, ClientTuning(policy=RetryPolicy(max_attempts=1)))
        with pytest.raises(SendGridError, match="not in the documented shape"):
            call(client)
    assert requests_seen == []
