"""One running copy of the app as a LAN peer: the hub, plus the mesh and discovery around it.

Every mode (desktop window, host mode, headless) owns exactly one ``Node``. It starts on the app's
event loop, so zeroconf and WebSocket events reach the hub on that loop and never touch controls.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

from .android import (
    acquire_multicast_lock,
    release_multicast_lock,
    request_local_network_permission,
)
from .authors import Authorship
from .budgets import join_lines_budget, posts_budget
from .config import Config
from .hub import SESSION_BURST, SESSION_RATE_PER_SECOND, Hub
from .identity import load_or_create_peer_id
from .model import MAX_NAME_CHARS, Peer, ValidationError, validate_name
from .store import Store, StoreError
from .trust import Trust

log = logging.getLogger("fletchat.node")


HISTORY_FILE = "history.db"


def mesh_for_hub(hub: Hub, me: Peer, trust=None, settings=None):
    """A mesh wired to ``hub`` (the hub is the mesh's ``MeshHost``: messages, roster, presence,
    catch-up, receipts, refusals, identity warnings), and set as the hub's transport."""
    from .mesh import Mesh, MeshSettings

    mesh = Mesh(me, hub, settings if settings is not None else MeshSettings(), trust)
    hub.transport = mesh
    return mesh


def open_store(data_dir: Path) -> tuple[Store | None, str]:
    """The install's history database, or (None, why) — the app then runs without history
    rather than not at all. A damaged file is copied aside by the store, never wiped."""
    try:
        return Store.open(data_dir / HISTORY_FILE), ""
    except StoreError as err:
        log.error("history unavailable: %s", err)
        return None, f"History is not being saved: {err}"


def default_peer_name(config: Config) -> str:
    """A label for this install in others' peer lists: --name, else the host name."""
    for candidate in (config.name, socket.gethostname(), "Flet Chat"):
        try:
            return validate_name(candidate[:MAX_NAME_CHARS])
        except ValidationError:
            continue
    return "Flet Chat"


class Node:
    def __init__(self, config: Config, device: str) -> None:
        self.config = config
        self.device = device
        self.peer_id = load_or_create_peer_id(config.data_dir)
        self.name = default_peer_name(config)
        store, error = open_store(config.data_dir)
        # The install's Ed25519 identity, known peer keys and blocks (docs/security.md).
        self.trust = Trust.open(config.data_dir, self.peer_id)
        self.hub = Hub(
            self.peer_id, device, store=store, store_error=error, trust=self.trust,
            session_rate=(SESSION_RATE_PER_SECOND, SESSION_BURST),
            announcements=join_lines_budget(), posts=posts_budget(),
            authors=Authorship.open(config.data_dir),
        )
        self.files = self._open_files(config)
        self.files_lane = None
        self.mesh = None
        self.discovery = None
        self.peer_port: int | None = None
        self._started = False
        self._lock = asyncio.Lock()
        self._permission_warning = ""  # Android 17's local network permission, while missing
        self._alone_check: asyncio.Task | None = None
        self._goodbyes: asyncio.Future | None = None  # started once: see begin_goodbyes
        # The network doctor's verdict when nobody was found after config.doctor_after seconds;
        # on_diagnosis (e.g. the headless peer's JSON line) hears it too.
        self.diagnosis = None
        self.on_diagnosis: Callable[[object], None] | None = None
        if config.lan:
            self.hub.network_check = self.check_network

    async def check_network(self):
        """The network doctor on demand (the UI's "Check network"); a few seconds."""
        from .doctor import check

        return await check(self.config.peers, peer_port=self.peer_port or 0)

    def _open_files(self, config: Config):
        """File sharing (fletchat/files): the blob store under the data dir, or None (logged)."""
        from .files.blobstore import BlobStore
        from .files.limits import MAX_FILE_BYTES
        from .files.share import FileShare

        try:
            store = BlobStore(config.data_dir / "files", quota=config.files_quota)
        except OSError as err:
            log.error("file sharing is off: %s", err)
            return None
        limit = MAX_FILE_BYTES if config.download_all else config.auto_download_bytes
        share = FileShare(store, self.hub._publish, auto_limit=limit)
        share.attach_listener(self.hub)
        self.hub.files = share
        return share

    async def start(self) -> None:
        """Start the LAN side (idempotent: desktop sessions call it from their ``main``)."""
        async with self._lock:
            if self._started:
                return
            self._started = True
            if self.files is not None:
                await self.files.start()
            if self.config.lan:
                await self._start_lan()

    async def _start_lan(self) -> None:
        from .discovery import Discovery, local_addresses
        from .mesh import Mesh, MeshSettings
        from .peer.dialer import never_dial
        from .protocol import PEER_PROTOCOL_VERSION

        # Android 17 blocks all LAN traffic until ACCESS_LOCAL_NETWORK is allowed (asked here; the
        # dialog's close resumes the app, and resume() re-browses). Elsewhere: granted.
        permission = request_local_network_permission()
        if not permission.granted:
            log.warning("%s", permission.message)
            self.hub.lan_warning = self._permission_warning = permission.message
        # Android drops incoming multicast unless the app holds a Wi-Fi MulticastLock: without it
        # discovery silently finds nobody. Elsewhere this is a no-op.
        lock = acquire_multicast_lock()
        if not lock.ok:
            log.warning("%s", lock.message)
            self.hub.lan_warning = f"{lock.message} Other devices may not find this one."

        me = Peer(self.peer_id, self.name, self.device)
        hub = self.hub

        own = local_addresses()

        def make_mesh(port: int) -> Mesh:
            settings = MeshSettings(host=self.config.host, port=port, own_addresses=own)
            return mesh_for_hub(hub, me, self.trust, settings)

        mesh = make_mesh(self.config.peer_port)
        try:
            port = await mesh.start()
        except OSError as err:
            if self.config.peer_port == 0:
                raise
            log.warning("peer port %s busy (%s); using a free port", self.config.peer_port, err)
            mesh = make_mesh(0)
            port = await mesh.start()
        self.mesh, self.peer_port = mesh, port
        hub.transport = mesh
        if self.files is not None:
            from .files.lane import FilesLane

            self.files_lane = FilesLane(mesh, self.files.service)
            self.files_lane.start()
        for host, peer_port in self.config.peers:
            mesh.add_peer_address(host, peer_port)

        def found(advert) -> None:
            # mDNS adverts are anyone's word: never loopback or this host's own addresses.
            for address in advert.addresses:
                if not never_dial(address, own):
                    mesh.add_peer_address(address, advert.port, advert.peer_id, discovered=True)
                    break

        self._make_discovery = lambda: Discovery(
            peer_id=self.peer_id,
            name=self.name,
            port=port,
            device=self.device,
            version=PEER_PROTOCOL_VERSION,
            on_found=found,
            on_lost=mesh.forget_peer_address,
            keep=lambda peer_id: any(p.id == peer_id for p in mesh.peers()),
            interfaces=list(self.config.interfaces) or None,
        )
        self.discovery = self._make_discovery()
        await self.discovery.start()
        log.info("LAN peer %s listening on port %s", self.peer_id[:8], port)
        if self.config.doctor_after > 0:
            self._alone_check = asyncio.ensure_future(self._diagnose_when_alone())

    async def _diagnose_when_alone(self) -> None:
        """Nobody after a while: ask the network doctor why, and say it where people look."""
        from .doctor import check

        await asyncio.sleep(self.config.doctor_after)
        if self.hub.lan_peers():
            return
        try:
            diagnosis = await check(self.config.peers, peer_port=self.peer_port or 0)
        except Exception:
            log.exception("network doctor failed")
            return
        if diagnosis.ok or self.hub.lan_peers():
            return
        self.diagnosis = diagnosis
        first = next(f for f in diagnosis.findings if f.cause != "ok")
        log.warning("nobody found: %s %s", first.summary, first.fix.replace("\n", " "))
        if not self.hub.lan_warning:
            self.hub.lan_warning = f"Nobody found: {first.summary} {first.fix}"
        if self.on_diagnosis is not None:
            self.on_diagnosis(diagnosis)

    async def resume(self) -> None:
        """Back in the foreground (Android battery savers freeze background apps and drop the
        multicast lock): take the lock again, re-announce and re-browse."""
        if self.discovery is None:
            return
        if self._permission_warning and request_local_network_permission(ask=False).granted:
            if self.hub.lan_warning == self._permission_warning:
                self.hub.lan_warning = ""  # allowed in the dialog that paused us
            self._permission_warning = ""
        acquire_multicast_lock()
        old, self.discovery = self.discovery, None
        try:
            await old.stop()
        except Exception:
            log.exception("discovery stop failed")
        self.discovery = self._make_discovery()
        await self.discovery.start()
        log.info("resumed: re-announced and re-browsing")

    async def stop(self, goodbye_timeout: float | None = None,
                   store_timeout: float | None = None) -> None:
        """Say goodbye on the LAN (mDNS goodbye and the peers' WebSocket bye, at the same time)
        and close. With timeouts (host mode on SIGTERM): the goodbyes get ``goodbye_timeout``
        seconds, then the store gets ``store_timeout`` to write what is queued."""
        goodbyes = self.begin_goodbyes()
        try:
            await asyncio.wait_for(asyncio.shield(goodbyes), goodbye_timeout)
        except TimeoutError:
            log.warning("LAN goodbyes not done within %.1f s; closing anyway", goodbye_timeout)
            goodbyes.cancel()
        release_multicast_lock()
        began = time.monotonic()
        self.hub.close(store_timeout)
        self.trust.close()
        log.info("stop: store closed in %.3f s", time.monotonic() - began)

    def begin_goodbyes(self) -> asyncio.Future:
        """Start the LAN goodbyes (mDNS first, the peers' bye at the same time) if not started;
        host mode calls this the moment SIGTERM arrives, so they go out while the web server is
        still closing the tabs. ``stop`` waits for the same goodbyes."""
        if self._goodbyes is None:
            if self._alone_check is not None:
                self._alone_check.cancel()
                self._alone_check = None
            began = time.monotonic()

            async def timed(what: str, step) -> None:
                await step
                log.info("stop: %s done in %.3f s", what, time.monotonic() - began)

            self._goodbyes = asyncio.ensure_future(asyncio.gather(
                timed("mDNS goodbye", self._stop_discovery()),
                timed("mesh bye", self._stop_mesh())))
        return self._goodbyes

    async def _stop_discovery(self) -> None:
        if self.discovery is not None:
            discovery, self.discovery = self.discovery, None
            try:
                await discovery.stop()
            except Exception:
                log.exception("discovery stop failed")

    async def _stop_mesh(self) -> None:
        if self.files_lane is not None:
            await self.files_lane.stop()
            self.files_lane = None
        if self.files is not None:
            await self.files.stop()
        if self.mesh is not None:
            try:
                await self.mesh.stop()
            except Exception:
                log.exception("mesh stop failed")
            self.mesh = None
