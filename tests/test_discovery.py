"""Discovery: the pure TXT rules, and real mDNS between network namespaces.

The LAN tests build a virtual LAN (tests/lan.py) and run tests/nsrun_discovery.py inside each
namespace; they skip without root locally and fail under CI. No mDNS is sent from the root
namespace: this machine's real interfaces never see test traffic.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
import sys
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zeroconf import ServiceStateChange, Zeroconf

from fletchat import discovery
from fletchat.discovery import (
    MAX_TXT_KEYS,
    Discovery,
    build_txt,
    instance_name,
    parse_txt,
    select_interfaces,
)
from fletchat.model import MAX_NAME_CHARS, ValidationError
from tests.conftest import need
from tests.lan import Host, JsonProc, lan_available, virtual_lan
from tests.timing import eventually, never_within_sync, scaled

# A limit for "a peer is found": beyond zeroconf's own 9 s start-up wait plus one 3 s resolve, so a
# slow start shows as a retry (fletchat.discovery), not as a race with this bound. Scaled by
# FLETCHAT_TESTS_TIMEOUT_FACTOR where it is used (tests/lan.py, tests/timing.py).
DISCOVERY_WAIT = 30.0

GOOD = {b"v": b"2", b"id": b"peer-1", b"name": b"Ada", b"port": b"8550", b"device": b"desktop"}


def with_(**changes: object) -> dict[bytes, object]:
    return {**GOOD, **{key.encode(): value for key, value in changes.items()}}


def without(key: str) -> dict[bytes, bytes | None]:
    return {k: v for k, v in GOOD.items() if k != key.encode()}


# ---------------------------------------------------------------- parse_txt / build_txt


def test_parse_good_txt() -> None:
    assert parse_txt(GOOD) == {
        "v": 2,
        "id": "peer-1",
        "name": "Ada",
        "port": 8550,
        "device": "desktop",
        "supported": True,
    }


def test_build_txt_round_trips() -> None:
    txt = build_txt("peer-1", "Ada Lovelace", 8550, "web-host", 1)
    parsed = parse_txt({k.encode(): v.encode() for k, v in txt.items()})
    assert (parsed["id"], parsed["name"], parsed["port"], parsed["device"], parsed["v"]) == (
        "peer-1",
        "Ada Lovelace",
        8550,
        "web-host",
        1,
    )


def test_build_txt_refuses_what_parse_would_reject() -> None:
    with pytest.raises(ValidationError):
        build_txt("bad id", "Ada", 8550, "desktop", 1)
    with pytest.raises(ValidationError):
        build_txt("peer-1", "A" * (MAX_NAME_CHARS + 1), 8550, "desktop", 1)


def test_unknown_version_is_parsed_but_flagged() -> None:
    parsed = parse_txt(with_(v=b"7"))
    assert parsed["v"] == 7 and parsed["supported"] is False


def test_keys_are_case_insensitive_and_unknown_keys_ignored() -> None:
    txt = {k.upper(): v for k, v in GOOD.items()} | {b"future": b"x", b"flag": None}
    assert parse_txt(txt)["name"] == "Ada"


def test_name_is_trimmed_and_unicode_allowed() -> None:
    assert parse_txt(with_(name="  Zoë 李  ".encode()))["name"] == "Zoë 李"


@pytest.mark.parametrize(
    ("txt", "why"),
    [
        *[(without(k), f"missing {k}") for k in ("v", "id", "name", "port", "device")],
        (with_(id=b"not an id!"), "id with spaces"),
        (with_(id=b""), "empty id"),
        (with_(id=b"x" * 65), "id too long"),
        (with_(id=b"peer-1\n"), "id with trailing newline"),
        (with_(name=b""), "blank name"),
        (with_(name=b"   "), "whitespace name"),
        (with_(name=b"M" * (MAX_NAME_CHARS + 1)), "name too long"),
        (with_(name=b"M" * 10_000), "10 KB name"),
        (with_(name=b"Mal\x1b[2Jlory"), "terminal escape in name"),
        (with_(name="Mal\u202elory".encode()), "bidi override in name"),
        (with_(name=b"\xff\xfe"), "name not UTF-8"),
        (with_(name=None), "name key without value"),
        (with_(port=b"0"), "port 0"),
        (with_(port=b"65536"), "port too big"),
        (with_(port=b"-1"), "negative port"),
        (with_(port=b"+80"), "signed port"),
        (with_(port=b" 80"), "port with space"),
        (with_(port=b"80\n"), "port with newline"),
        (with_(port="８０".encode()), "fullwidth digits"),
        (with_(port=b"http"), "port not a number"),
        (with_(v=b"one"), "version not a number"),
        (with_(v=b"99999999999"), "version huge"),
        (with_(v=b""), "version empty"),
        (with_(device=b"desk top"), "device with space"),
        (with_(device=b"d" * 40), "device too long"),
        (GOOD | {b"ID": b"other"}, "duplicate key differing in case"),
        (GOOD | {f"k{i}".encode(): b"" for i in range(MAX_TXT_KEYS)}, "too many keys"),
        (GOOD | {f"k{i}".encode(): b"x" * 200 for i in range(7)}, "over 1300 bytes"),
        (GOOD | {"ключ".encode(): b"x"}, "non-ASCII key"),
        (GOOD | {b"": b"x"}, "empty key"),
        ({**GOOD, 1: b"x"}, "key not bytes"),
        (with_(name=3), "value not bytes"),
        ([(b"v", b"1")], "not a mapping"),
        (None, "None"),
    ],
)
def test_malformed_txt_is_rejected(txt: Any, why: str) -> None:
    with pytest.raises(ValidationError):
        parse_txt(txt)


_keys = st.one_of(
    st.sampled_from([b"v", b"id", b"name", b"port", b"device", b"ID", b"Name"]),
    st.binary(max_size=12),
    st.text(max_size=12),
)
_values = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.text(max_size=60),
    st.sampled_from([b"1", b"8550", b"peer-1", b"Ada", b"desktop", b"0", b"65536", b"\xff"]),
    st.integers(),
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.dictionaries(_keys, _values, max_size=8),
        st.builds(lambda d: GOOD | d, st.dictionaries(_keys, _values, max_size=4)),
    )
)
def test_fuzz_parse_txt_raises_only_validation_error(txt: dict[Any, Any]) -> None:
    try:
        parsed = parse_txt(txt)
    except ValidationError:
        return
    assert 1 <= parsed["port"] <= 65535
    assert 0 < len(parsed["name"]) <= MAX_NAME_CHARS


@given(st.text(max_size=200), st.text(alphabet=string.hexdigits, min_size=1, max_size=32))
def test_instance_name_is_a_valid_label(name: str, peer_id: str) -> None:
    full = instance_name(name, peer_id)
    label = full.removesuffix("._fletchat._tcp.local.")
    assert full.endswith("._fletchat._tcp.local.")
    assert 0 < len(label.encode()) <= 63
    assert "." not in label and all(ch.isprintable() for ch in label)
    assert peer_id[:8] in label


def test_instance_names_differ_per_process_of_one_install() -> None:
    assert instance_name("Ada", "peer-1") != instance_name("Ada", "peer-1")


def test_select_interfaces_never_advertises_link_local_or_loopback_when_lan_exists() -> None:
    _, addresses = select_interfaces(None)  # reads interfaces; sends nothing
    assert addresses
    if any(not a.startswith(("127.", "::1")) for a in addresses):
        assert not any(a.startswith(("127.", "fe80")) or a == "::1" for a in addresses)
    with pytest.raises(ValueError):
        select_interfaces(["no-such-interface0"])


# ---------------------------------------------------------------- loopback, in process


async def test_two_peers_on_loopback_deliver_on_the_apps_loop(monkeypatch) -> None:
    """Whole flow without root: mDNS on 127.0.0.1 only, under a service type private to this run
    (so no other app or test on this machine sees these peers). Peer A delivers its callbacks on a
    separate "app" loop in another thread, as a UI toolkit's loop would be."""
    monkeypatch.setattr(discovery, "SERVICE_TYPE", f"_fct{secrets.token_hex(3)}._tcp.local.")
    app_loop = asyncio.new_event_loop()
    app_thread = threading.Thread(target=app_loop.run_forever, daemon=True)
    app_thread.start()
    events: list[tuple[str, str, str, str]] = []

    def record(kind: str, who: str, what: str) -> None:
        events.append((kind, who, what, threading.current_thread().name))

    def make(peer_id: str, port: int, loop: asyncio.AbstractEventLoop | None) -> Discovery:
        return Discovery(
            peer_id=peer_id,
            name=peer_id.upper(),
            port=port,
            device="desktop",
            version=1,
            on_found=lambda ad: record("found", peer_id, ad.peer_id),
            on_lost=lambda pid: record("lost", peer_id, pid),
            interfaces=["127.0.0.1"],
            loop=loop,
        )

    a, b = make("a", 9101, app_loop), make("b", 9102, None)
    try:
        await a.start()
        await b.start()
        await eventually(
            lambda: {e[:3] for e in events} >= {("found", "a", "b"), ("found", "b", "a")},
            "a and b found each other",
            DISCOVERY_WAIT,
        )
        await b.stop()
        await eventually(
            lambda: ("lost", "a", "b") in {e[:3] for e in events}, "a saw b leave", DISCOVERY_WAIT
        )
    finally:
        await a.stop()
        await b.stop()
        app_loop.call_soon_threadsafe(app_loop.stop)
        app_thread.join(5)
        app_loop.close()
    seen = {e[:3] for e in events}
    assert {("found", "a", "b"), ("found", "b", "a"), ("lost", "a", "b")} <= seen, events
    assert not any(e[1] == e[2] for e in events), "a peer reported itself"
    assert all(e[3] == app_thread.name for e in events if e[1] == "a")
    assert all(e[3] == threading.current_thread().name for e in events if e[1] == "b")


def _loopback_peer(peer_id: str, events: list[tuple[str, str]]) -> Discovery:
    return Discovery(
        peer_id=peer_id,
        name=peer_id.upper(),
        port=9100,
        device="desktop",
        version=1,
        on_found=lambda ad: events.append(("found", ad.peer_id)),
        on_lost=lambda pid: events.append(("lost", pid)),
        interfaces=["127.0.0.1"],
    )


async def test_a_start_slower_than_zeroconfs_own_wait_still_finds_peers(monkeypatch) -> None:
    """zeroconf's own calls (browser queries, registration, resolving) wait 9 s for its sockets;
    past that, zeroconf reports "not running" for good, and every resolve failed with
    NotRunningException (seen on a loaded machine). Here that wait is cut to nothing, so any
    start-up that takes a loop turn is "too slow": discovery must still work."""
    monkeypatch.setattr(discovery, "SERVICE_TYPE", f"_fct{secrets.token_hex(3)}._tcp.local.")
    monkeypatch.setattr(Zeroconf.async_wait_for_start, "__defaults__", (0.0,))
    events: list[tuple[str, str]] = []
    a, b = _loopback_peer("a", events), _loopback_peer("b", [])
    try:
        await a.start()
        await b.start()
        await eventually(lambda: ("found", "b") in events, "a found b", DISCOVERY_WAIT)
    finally:
        await a.stop()
        await b.stop()


class _BrokenInfo(discovery.AsyncServiceInfo):
    async def async_request(self, zc, timeout, *args, **kwargs):  # type: ignore[override]
        raise RuntimeError("a bug while resolving")


async def test_a_failed_resolve_is_logged_not_left_unretrieved(monkeypatch, caplog) -> None:
    monkeypatch.setattr(discovery, "SERVICE_TYPE", f"_fct{secrets.token_hex(3)}._tcp.local.")
    monkeypatch.setattr(discovery, "AsyncServiceInfo", _BrokenInfo)
    a = _loopback_peer("a", [])
    await a.start()
    try:
        with caplog.at_level(logging.ERROR, "fletchat.discovery"):
            a._handle_change(f"x.{discovery.SERVICE_TYPE}", ServiceStateChange.Added)
            await eventually(lambda: ours(caplog.records), "the failure is logged", 5.0)
    finally:
        await a.stop()
    [record] = ours(caplog.records)
    assert record.getMessage().startswith("resolving 'x.")
    assert record.exc_info is not None and "a bug while resolving" in str(record.exc_info[1])
    assert not a._resolving


def ours(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "fletchat.discovery" and r.levelno == logging.ERROR]


# ---------------------------------------------------------------- real LAN

SCRIPT = "tests/nsrun_discovery.py"


def start_peer(host: Host, k: int, *extra: str, name: str | None = None) -> JsonProc:
    return host.spawn_json(
        [
            sys.executable,
            SCRIPT,
            "peer",
            "--id",
            f"peer-{k}",
            "--name",
            name or f"Host {k}",
            "--port",
            str(9000 + k),
            *extra,
        ]
    )


def found(peer_id: str, name: str | None = None):
    def pred(e: dict[str, Any]) -> bool:
        return (
            e["ev"] == "found" and e["peer_id"] == peer_id and (name is None or e["name"] == name)
        )

    return pred


def lost(peer_id: str):
    return lambda e: e["ev"] == "lost" and e["id"] == peer_id


@pytest.fixture
def lan3():
    need(*lan_available())
    with virtual_lan(3) as lan:
        yield lan


def test_three_hosts_find_each_other_rename_and_say_goodbye(lan3) -> None:
    h1, h2, h3 = lan3
    # Three ways to choose interfaces: by name, all (default), by address (IPv4 only).
    procs = [
        start_peer(h1, 1, "--interfaces", "eth0"),
        start_peer(h2, 2),
        start_peer(h3, 3, "--interfaces", h3.ip),
    ]
    for k, proc in enumerate(procs, 1):
        for j, host in enumerate(lan3, 1):
            if j == k:
                continue
            event = proc.wait_for(found(f"peer-{j}"), timeout=DISCOVERY_WAIT)
            assert event, f"host {k} did not find host {j}: {proc.events}"
            assert event["name"] == f"Host {j}"
            assert event["port"] == 9000 + j
            assert event["addresses"][0] == host.ip  # IPv4 first
            expected = [host.ip] if j == 3 else [host.ip, host.ip6]
            assert event["addresses"] == expected
            assert event["device"] == "headless" and event["version"] == 2
        assert not proc.matching(found(f"peer-{k}")), "a peer reported itself"

    # A new display name is re-announced and reported as found again, same instance.
    procs[0].send("rename Ada Renamed")
    for proc in procs[1:]:
        assert proc.wait_for(found("peer-1", "Ada Renamed"), timeout=5), proc.events

    # A clean exit says goodbye: the others report it lost at once.
    procs[2].send("quit")
    assert procs[2].proc.wait(timeout=scaled(10)) == 0
    for proc in procs[:2]:
        assert proc.wait_for(lost("peer-3"), timeout=5), proc.events

    # SIGKILL sends no goodbye, so mDNS keeps the peer in the others' caches for its record TTL
    # (noticing a crashed peer is the mesh heartbeat's job). Nobody answers for it any more, so a
    # newcomer finds the live peer and never the killed one. (Timings: bench/lan.py.)
    procs[1].proc.kill()
    procs[1].proc.wait(timeout=scaled(10))
    newcomer = start_peer(lan3[2], 4)
    assert newcomer.wait_for(found("peer-1"), timeout=DISCOVERY_WAIT), newcomer.events
    assert procs[0].wait_for(found("peer-4"), timeout=DISCOVERY_WAIT), procs[0].events
    never_within_sync(
        lambda: newcomer.matching(found("peer-2")), "the killed peer announced to a newcomer", 2.0
    )


def test_hostile_adverts_are_ignored_and_logged() -> None:
    need(*lan_available())
    with virtual_lan(2, ipv6=False) as (h1, h2):
        hostile = h1.spawn_json([sys.executable, SCRIPT, "hostile", "--ip", h1.ip])
        assert hostile.wait_for(lambda e: e["ev"] == "ready", timeout=DISCOVERY_WAIT), hostile.events
        good = start_peer(h1, 1)
        watcher = start_peer(h2, 2)
        assert watcher.wait_for(found("peer-1"), timeout=DISCOVERY_WAIT), watcher.events
        # Every hostile instance gets one warning; none reaches on_found.
        names = hostile.matching(lambda e: e["ev"] == "ready")[0]["names"]
        for name in names:
            label = name.split(".")[0]
            assert watcher.wait_for(
                lambda e, label=label: (
                    e["ev"] == "log" and e["level"] == "WARNING" and label in e["msg"]
                ),
                timeout=DISCOVERY_WAIT,
            ), f"no warning for {label}: {watcher.events}"
        assert [e["peer_id"] for e in watcher.matching(lambda e: e["ev"] == "found")] == ["peer-1"]
        warnings = watcher.matching(lambda e: e["ev"] == "log" and e["level"] == "WARNING")
        assert len(warnings) == len(names), "each hostile advert is logged once"
        assert all(len(w["msg"]) < 400 for w in warnings)
        good.send("quit")
        hostile.send("")


CONNECT = (
    "import socket, sys; s = socket.create_connection((sys.argv[1], 9003), timeout=3); "
    "print(s.recv(100).decode().strip())"
)


def test_filtered_multicast_prevents_discovery_but_not_unicast(lan3) -> None:
    h1, _, h3 = lan3
    h3.block_multicast()
    procs = [start_peer(h, k, "--listen") for k, h in enumerate(lan3, 1)]
    assert procs[0].wait_for(found("peer-2"), timeout=DISCOVERY_WAIT), procs[0].events
    assert procs[1].wait_for(found("peer-1"), timeout=DISCOVERY_WAIT), procs[1].events
    never_within_sync(  # well past the others' announcements
        lambda: procs[2].matching(lambda e: e["ev"] == "found")
        or procs[0].matching(found("peer-3"))
        or procs[1].matching(found("peer-3")),
        "discovery across the multicast filter",
        2.0,
    )
    # ... yet a manually entered address still reaches h3 over unicast, IPv4 and IPv6.
    for addr in (h3.ip, h3.ip6):
        out = h1.run(
            [
                sys.executable,
                "-c",
                CONNECT,
                addr,
            ]
        ).stdout.strip()
        assert out == "fletchat-test peer-3"
