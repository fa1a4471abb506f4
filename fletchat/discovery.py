"""Find other copies of the app on the LAN with mDNS/DNS-SD (zeroconf), and announce this one.

Each running app registers one ``_fletchat._tcp.local.`` service whose TXT record carries the peer id,
display name, WebSocket port, device kind and protocol version, and browses for the same type. Found
and vanished peers are reported through two callbacks; the mesh decides whether to connect.

Threading: zeroconf may run its callbacks on its own thread or loop. Every zeroconf event is handed to
the loop that ran ``start()`` with ``call_soon_threadsafe``, and user callbacks are delivered the same
way on the app's loop (``loop=``, default: the loop that ran ``start()``). User code is never called
from a zeroconf thread, and nothing here blocks the event loop beyond opening sockets in ``start()``.

Trust: a TXT record is input from a stranger. ``parse_txt`` is pure and validates every field with the
same rules as ``model``; a malformed or hostile advert is ignored with one log line per instance
(logger ``fletchat.discovery``) and never reaches the callbacks.

Liveness: mDNS reports a peer lost when it says goodbye (clean shutdown) or when its records expire.
A peer that crashes, or drops off Wi-Fi, sends no goodbye and its PTR record lives for 75 minutes, so
discovery alone does not notice it quickly: that is the mesh heartbeat's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import secrets
import socket
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import ifaddr
from zeroconf import (
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    NotRunningException,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from fletchat.model import ValidationError, validate_id, validate_name

logger = logging.getLogger("fletchat.discovery")

SERVICE_TYPE = "_fletchat._tcp.local."

#: TXT/protocol versions this build understands. Adverts with another ``v`` are still reported
#: (``Advert.version`` says which), so the UI can say "X runs a newer version" instead of nothing.
SUPPORTED_VERSIONS: frozenset[int] = frozenset({2})  # protocol.PEER_PROTOCOL_VERSION

# Limits on what a stranger's TXT record may make us process.
MAX_TXT_KEYS = 32
MAX_TXT_VALUE_BYTES = 255  # one DNS character-string
MAX_TXT_TOTAL_BYTES = 1300  # RFC 6763 6.2: "should be kept under 1300 bytes"
MAX_DEVICE_CHARS = 32
MAX_VERSION = 1_000_000
MAX_INSTANCES = 256  # distinct adverts tracked at once; beyond this a flood is ignored
RESOLVE_TIMEOUT_MS = 3000
# How long start() waits for zeroconf's sockets. zeroconf's own calls wait 9 s and, past that,
# report "not running" for good (its start-up future is settled to None), so we wait first, longer.
STARTUP_TIMEOUT_S = 60.0

REQUIRED_KEYS = ("v", "id", "name", "port", "device")
_DIGITS = re.compile(r"[0-9]{1,7}")  # use with fullmatch: "$" would accept a trailing newline


# ---------------------------------------------------------------- pure TXT handling


def build_txt(peer_id: str, name: str, port: int, device: str, version: int) -> dict[str, str]:
    """The TXT properties we announce. Validated here too, so we never advertise what we'd reject."""
    txt = {
        "v": str(version),
        "id": peer_id,
        "name": name,
        "port": str(port),
        "device": device,
    }
    parse_txt({k.encode(): v.encode() for k, v in txt.items()})
    return txt


def parse_txt(
    properties: Mapping[Any, Any], supported: Collection[int] = SUPPORTED_VERSIONS
) -> dict[str, Any]:
    """Validate a peer's TXT properties (as zeroconf gives them: ``dict[bytes, bytes | None]``).

    Returns ``{"v": int, "id": str, "name": str, "port": int, "device": str, "supported": bool}``;
    ``supported`` is False for a well-formed advert with a ``v`` this build does not know. Raises
    ``ValidationError`` (and nothing else) for anything malformed: wrong types, too many or oversized
    entries, non-UTF-8, duplicate keys, missing keys, or a field that breaks ``model``'s rules.
    Keys are case-insensitive (RFC 6763 6.4); unknown keys are ignored, for forward compatibility.
    """
    values = _txt_values(properties)
    for k in ("v", "id", "port", "device"):
        if not values[k].isprintable():
            raise ValidationError(f"Invalid {k} in TXT record.")
    if not _DIGITS.fullmatch(values["v"]) or int(values["v"]) > MAX_VERSION:
        raise ValidationError("Invalid version in TXT record.")
    version = int(values["v"])
    peer_id = validate_id(values["id"], "peer id")
    name = validate_name(values["name"])
    if not _DIGITS.fullmatch(values["port"]) or not 1 <= int(values["port"]) <= 65535:
        raise ValidationError("Invalid port in TXT record.")
    device = values["device"]
    if len(device) > MAX_DEVICE_CHARS:
        raise ValidationError("Invalid device in TXT record.")
    validate_id(device, "device")
    return {
        "v": version,
        "id": peer_id,
        "name": name,
        "port": int(values["port"]),
        "device": device,
        "supported": version in supported,
    }


def _txt_values(properties: Mapping[Any, Any]) -> dict[str, str]:
    """The TXT record as lower-case keys and UTF-8 values, bounded, with every required key."""
    if not isinstance(properties, Mapping):
        raise ValidationError("TXT record must be a mapping.")
    if len(properties) > MAX_TXT_KEYS:
        raise ValidationError("TXT record has too many entries.")
    values: dict[str, str] = {}
    total = 0
    for raw_key, raw_value in properties.items():
        key = _txt_bytes(raw_key, "key")
        value = b"" if raw_value is None else _txt_bytes(raw_value, "value")
        total += len(key) + len(value) + 2
        if len(key) + len(value) + 1 > MAX_TXT_VALUE_BYTES or total > MAX_TXT_TOTAL_BYTES:
            raise ValidationError("TXT record is too large.")
        try:
            k = key.decode("ascii").lower()
            v = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError("TXT record is not valid text.") from None
        if not k or "=" in k:
            raise ValidationError("TXT record has an invalid key.")
        if k in values:
            raise ValidationError("TXT record has a duplicate key.")
        if k in REQUIRED_KEYS and raw_value is None:
            raise ValidationError(f"TXT key {k!r} has no value.")
        values[k] = v
    missing = [k for k in REQUIRED_KEYS if k not in values]
    if missing:
        raise ValidationError(f"TXT record lacks {', '.join(missing)}.")

    return values


def _txt_bytes(raw: object, what: str) -> bytes:
    if isinstance(raw, str):
        try:
            return raw.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates
            raise ValidationError(f"TXT {what} is not valid text.") from None
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    raise ValidationError(f"TXT {what} has the wrong type.")


def instance_name(name: str, peer_id: str, tag: str | None = None) -> str:
    """A unique, human-readable DNS-SD instance name: ``"Ada (1a2b3c4d-9f3e2a)._fletchat._tcp.local."``.

    The peer id prefix makes it unique per install and the random ``tag`` per process (two windows
    of one install are two peers on the wire, and a restarted app must not collide with its own
    not-yet-expired records). The label is at most 63 UTF-8 bytes, with dots, backslashes and
    control characters removed from the display name.
    """
    suffix = f" ({_host_safe(peer_id[:8])}-{secrets.token_hex(3) if tag is None else tag})"
    clean = "".join(
        ch
        for ch in name
        if ch == " " or (ch not in ".\\" and unicodedata.category(ch)[0] not in "CZ")
    ).strip()
    budget = 63 - len(suffix.encode())
    label = clean.encode()[:budget].decode("utf-8", "ignore").strip() or "peer"
    return f"{label}{suffix}.{SERVICE_TYPE}"


# ---------------------------------------------------------------- interfaces and addresses


def _is_v6_link_local(ip: str) -> bool:
    return ipaddress.ip_address(ip.split("%")[0]).is_link_local and ":" in ip


def select_interfaces(
    interfaces: list[str] | None,
) -> tuple[InterfaceChoice | list[str | int], list[str]]:
    """Map the caller's choice to (zeroconf ``interfaces=`` argument, addresses to advertise).

    ``None`` listens on every interface, IPv4 and IPv6. A list may hold interface names (``"eth0"``;
    on Windows the friendly name works too) and IP addresses. Advertised are the usable unicast
    addresses of the chosen interfaces: not loopback (unless nothing else exists, so two copies on
    one machine still find each other) and not IPv6 link-local (useless without a scope id).
    Found with ``ifaddr``, which zeroconf already depends on. Raises ``ValueError`` for an unknown
    interface name.
    """
    adapters = ifaddr.get_adapters()
    zc_arg: InterfaceChoice | list[str | int]
    candidates: list[str] = []
    if interfaces is None:
        zc_arg = InterfaceChoice.All
        for adapter in adapters:
            candidates.extend(_adapter_ips(adapter))
    else:
        zc_arg = []
        for item in interfaces:
            try:
                ip = str(ipaddress.ip_address(item.split("%")[0]))
            except ValueError:
                adapter = next(
                    (a for a in adapters if item in (a.name, getattr(a, "nice_name", None))), None
                )
                if adapter is None:
                    raise ValueError(f"No network interface named {item!r}.") from None
                ips = _adapter_ips(adapter)
                zc_arg.extend(a for a in ips if ":" not in a)
                if any(":" in a for a in ips) and adapter.index is not None:
                    zc_arg.append(adapter.index)  # zeroconf joins IPv6 groups by index
                candidates.extend(ips)
            else:
                zc_arg.append(ip)
                candidates.append(ip)
        if not zc_arg:
            raise ValueError("None of the chosen interfaces has an IP address.")
    usable = [
        ip
        for ip in candidates
        if not ipaddress.ip_address(ip).is_loopback and not _is_v6_link_local(ip)
    ]
    if not usable:
        usable = [ip for ip in candidates if not _is_v6_link_local(ip)]
    ordered = sorted(dict.fromkeys(usable), key=lambda ip: ":" in ip)  # IPv4 first, stable
    return zc_arg, ordered


def local_addresses() -> frozenset[str]:
    """Every address of this host's interfaces (loopback included, IPv6 without scope)."""
    return frozenset(
        ip.split("%")[0] for adapter in ifaddr.get_adapters() for ip in _adapter_ips(adapter)
    )


def _adapter_ips(adapter: ifaddr.Adapter) -> list[str]:
    out = []
    for ip in adapter.ips:
        out.append(ip.ip if isinstance(ip.ip, str) else ip.ip[0])
    return out


# ---------------------------------------------------------------- the service


@dataclass(frozen=True)
class Advert:
    """A validated advert of another peer: enough to open a WebSocket to it."""

    peer_id: str
    name: str
    port: int
    version: int
    device: str
    addresses: tuple[str, ...]  # IPv4 first; IPv6 link-local ones carry a scope ("fe80::1%3")
    instance: str  # the DNS-SD instance name (unique per process)


class Discovery:
    """Announce this peer and report others. See the module docstring for threading and trust.

    ``on_found(advert)`` fires when a peer appears and again whenever its advert changes (new name,
    port or addresses). ``on_lost(peer_id)`` fires when its last instance says goodbye or expires.
    """

    def __init__(  # noqa: PLR0913 - keyword-only, each named at the call site
        self,
        *,
        peer_id: str,
        name: str,
        port: int,
        device: str,
        version: int,
        on_found: Callable[[Advert], None],
        on_lost: Callable[[str], None],
        interfaces: list[str] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        keep: Callable[[str], bool] = lambda peer_id: False,
    ) -> None:
        build_txt(peer_id, name, port, device, version)  # fail early on a bad own advert
        self.peer_id = peer_id
        self.name = validate_name(name)
        self.port = port
        self.device = device
        self.version = version
        self.on_found = on_found
        self.on_lost = on_lost
        self.interfaces = interfaces
        self.keep = keep  # peers we are connected to: their adverts never make room for others
        self._app_loop = loop
        self._loop: asyncio.AbstractEventLoop | None = None  # where zeroconf and our tasks run
        self._azc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._register_task: asyncio.Task[None] | None = None
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._known: dict[str, Advert] = {}  # instance name -> last advert reported
        self._complained: set[tuple[str, str]] = set()
        self._closed = False
        self._registered = False
        self.addresses: list[str] = []

    # -- lifecycle

    async def start(self) -> None:
        """Start browsing as soon as zeroconf's sockets are up, and register in the background.

        Browsing comes first so peers already on the LAN are reported within a few hundred ms;
        registration needs ~1.5 s of mDNS probing for name conflicts, which runs as a task.
        """
        self._loop = asyncio.get_running_loop()
        if self._app_loop is None:
            self._app_loop = self._loop
        zc_interfaces, self.addresses = select_interfaces(self.interfaces)
        try:
            ip_version = IPVersion.All if zc_interfaces is InterfaceChoice.All else None
            self._azc = AsyncZeroconf(interfaces=zc_interfaces, ip_version=ip_version)
        except OSError as err:  # e.g. IPv6 disabled in the kernel
            logger.warning("mDNS over IPv6 unavailable (%s); using IPv4 only", err)
            self._azc = AsyncZeroconf(interfaces=zc_interfaces, ip_version=IPVersion.V4Only)
        try:
            await self._azc.zeroconf.async_wait_for_start(timeout=STARTUP_TIMEOUT_S)
        except NotRunningException:
            logger.error("mDNS did not start within %.0f s; no peer will be found", STARTUP_TIMEOUT_S)
        self._browser = AsyncServiceBrowser(
            self._azc.zeroconf, SERVICE_TYPE, handlers=[self._on_service_state_change]
        )
        self._info = self._make_info(instance_name(self.name, self.peer_id))
        self._register_task = self._loop.create_task(self._register())

    async def stop(self) -> None:
        """Say goodbye (peers see us lost at once) and close the sockets. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        tasks = list(self._resolving.values())
        if self._register_task is not None:
            tasks.append(self._register_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._azc is not None:
            await self._azc.async_close()  # sends goodbyes for what is registered

    async def update_name(self, name: str) -> None:
        """Re-announce our TXT record with a new display name (peers get ``on_found`` again)."""
        self.name = validate_name(name)
        build_txt(self.peer_id, self.name, self.port, self.device, self.version)
        if self._azc is None or self._info is None or self._closed:
            return
        if self._register_task is not None and not self._register_task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._register_task)
        info = self._make_info(self._info.name)  # keep the instance name: it is our identity
        registered = self._registered
        self._info = info
        if registered:
            await (await self._azc.async_update_service(info))

    @property
    def instance(self) -> str | None:
        """Our DNS-SD instance name, once ``start()`` ran (may change if a conflict is found)."""
        return None if self._info is None else self._info.name

    # -- registering

    def _make_info(self, instance: str) -> AsyncServiceInfo:
        host = _host_safe(f"fletchat-{self.peer_id[:8]}-{secrets.token_hex(3)}")
        if self._info is not None and self._info.server:
            host = self._info.server.removesuffix(".local.")
        return AsyncServiceInfo(
            SERVICE_TYPE,
            instance,
            addresses=[socket.inet_pton(_family(ip), ip) for ip in self.addresses],
            port=self.port,
            properties=build_txt(self.peer_id, self.name, self.port, self.device, self.version),
            server=f"{host}.local.",
        )

    async def _register(self) -> None:
        assert self._azc is not None and self._info is not None
        try:
            done = await self._azc.async_register_service(self._info, allow_name_change=True)
            self._registered = True
            await done
            logger.info("registered %s on %s", self._info.name, ", ".join(self.addresses))
        except asyncio.CancelledError:
            raise
        except NonUniqueNameException:
            logger.error("mDNS name %s is taken; peers will not find us", self._info.name)
        except Exception:
            logger.exception("registering %s failed", self._info.name)

    # -- browsing (zeroconf's side)

    def _on_service_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        """Runs on zeroconf's thread or loop: only hand the event over."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._handle_change, name, state_change)

    def _handle_change(self, name: str, state_change: ServiceStateChange) -> None:
        if self._closed:
            return
        if state_change is ServiceStateChange.Removed:
            task = self._resolving.pop(name, None)
            if task is not None:
                task.cancel()
            advert = self._known.pop(name, None)
            if advert is not None and not any(
                a.peer_id == advert.peer_id for a in self._known.values()
            ):
                logger.info("lost %s (%s)", advert.name, advert.instance)
                self._deliver(self.on_lost, advert.peer_id)
            return
        is_new = name not in self._known and name not in self._resolving
        full = len(self._known) + len(self._resolving) >= MAX_INSTANCES
        if is_new and full and not self._make_room():
            self._complain(name, "too many adverts on the LAN; ignoring more")
            return
        old = self._resolving.pop(name, None)
        if old is not None:
            old.cancel()
        assert self._loop is not None
        task = self._loop.create_task(self._resolve(name))
        self._resolving[name] = task
        task.add_done_callback(lambda t: self._forget_task(name, t))

    def _make_room(self) -> bool:
        """A flood of adverts must not hide a real newcomer: the oldest advert of a peer we are
        not connected to (or the oldest pending resolve) makes room. It is resolved again when
        it announces itself again."""
        for name, advert in self._known.items():
            if not self.keep(advert.peer_id):
                del self._known[name]
                return True
        for name, task in self._resolving.items():
            task.cancel()
            del self._resolving[name]
            return True
        return False

    def _forget_task(self, name: str, task: asyncio.Task[None]) -> None:
        if self._resolving.get(name) is task:
            del self._resolving[name]
        if not task.cancelled() and (err := task.exception()) is not None:
            # Retrieved here, so a bug in resolving is one log line, not a silent lost peer.
            logger.error("resolving %r failed", name[:200], exc_info=err)

    async def _resolve(self, name: str) -> None:
        assert self._azc is not None
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        try:
            answered = await info.async_request(self._azc.zeroconf, RESOLVE_TIMEOUT_MS)
        except NotRunningException:  # closing (start() waited for zeroconf to run)
            if not self._closed:
                self._complain(name, "mDNS is not running; advert not resolved")
            return
        if not answered:
            logger.debug("no answer resolving %s", name)
            return
        try:
            fields = parse_txt(info.properties)
        except ValidationError as err:
            self._complain(name, f"malformed advert ignored: {err}")
            return
        if fields["id"] == self.peer_id and self._info is not None and name == self._info.name:
            return  # our own advert
        if info.port is None or info.port != fields["port"]:
            self._complain(name, "advert ignored: SRV and TXT ports differ")
            return
        addresses = sorted(
            dict.fromkeys(info.parsed_scoped_addresses(IPVersion.All)), key=lambda ip: ":" in ip
        )
        if not addresses:
            self._complain(name, "advert ignored: no addresses")
            return
        if not fields["supported"]:
            self._complain(name, f"peer speaks version {fields['v']}, this build does not")
        advert = Advert(
            peer_id=fields["id"],
            name=fields["name"],
            port=fields["port"],
            version=fields["v"],
            device=fields["device"],
            addresses=tuple(addresses),
            instance=name,
        )
        if self._closed or self._known.get(name) == advert:
            return
        self._known[name] = advert
        logger.info("found %s at %s port %d", advert.name, ", ".join(addresses), advert.port)
        self._deliver(self.on_found, advert)

    # -- handing over to the app

    def _deliver(self, callback: Callable[[Any], None], arg: object) -> None:
        assert self._app_loop is not None
        with contextlib.suppress(RuntimeError):  # app loop already closed: nobody to tell
            self._app_loop.call_soon_threadsafe(self._call, callback, arg)

    def _call(self, callback: Callable[[Any], None], arg: object) -> None:
        if self._closed:
            return
        try:
            callback(arg)
        except Exception:
            logger.exception("discovery callback %r failed", callback)

    def _complain(self, name: str, reason: str) -> None:
        """Log once per (instance, reason): a hostile peer must not be able to flood the log."""
        key = (name[:200], reason)
        if key in self._complained:
            return
        if len(self._complained) < 10_000:
            self._complained.add(key)
        logger.warning("%r: %s", name[:200], reason)


def _host_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", text)


def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET
