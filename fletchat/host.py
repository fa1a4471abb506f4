"""Host mode: the app as a web server on the LAN. Each browser tab is a Flet session.

One process, one port: flet-web's FastAPI app serves the Flet web client (``no_cdn``: nothing is
fetched from the internet) and its sessions, while the node's mesh and discovery run on the same
event loop. We bind the socket ourselves so a busy port is a one-line error, not a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from .config import Config
from .gcpace import GcPacer
from .netinfo import PortInUse, lan_addresses, url_for
from .node import Node
from .qr import join_banner, join_url
from .sessions import SessionGate, SessionLimits, flet_sessions_held
from .ui import APP_TITLE, make_session_main

log = logging.getLogger("fletchat.host")

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
# The static (Pyodide) web build, made by ``python -m fletchat.webbuild``; served at STATIC_PATH.
DEFAULT_STATIC_DIR = Path(__file__).resolve().parent.parent / "build" / "web-static"
STATIC_PATH = "/app"
# The largest WebSocket message any route accepts (Flet's /ws and the relay), enforced by uvicorn
# before it buffers a message: Flet's own messages are a few KiB (a 4000-character text field is
# 16 KiB at most) and the relay's limit is 64 KiB, so nothing real comes near it.
MAX_WS_MESSAGE_BYTES = 256 * 1024
GATE_SALT_FILE = "gate.salt"


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket up front, so errors are ours to word."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        if err.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            raise PortInUse(
                f"port {port} on {host} is already in use (another Flet Chat?); "
                f"pick another with --port or FLETCHAT_PORT"
            ) from err
        raise PortInUse(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    sock.listen(128)
    sock.setblocking(False)
    return sock


# SIGTERM / Ctrl+C to exit, bounded at every step (issue 11, hole 13: 100 open tabs and a busy
# host once kept it alive for over a minute): open tabs get SHUTDOWN_GRACE_SECONDS to finish, the
# web server SERVER_STOP_SECONDS in all, the LAN goodbyes (mDNS and the peers' bye, at the same
# time) GOODBYE_SECONDS, then the store STORE_CLOSE_SECONDS to write what is queued.
SHUTDOWN_GRACE_SECONDS = 0.5
SERVER_STOP_SECONDS = 1.0
GOODBYE_SECONDS = 1.5  # the mesh's own bound for its byes (MeshSettings.shutdown_timeout)
STORE_CLOSE_SECONDS = 5.0  # normally milliseconds; generous, since what is queued is not acked
HIDDEN_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
_GONE = ("ClientDisconnected", "WebSocketDisconnect")


def _not_a_closed_tab(record: logging.LogRecord) -> bool:
    """While stopping, a tab whose socket the server just closed is not an error worth a
    traceback (there would be one per open tab, formatted on the busy loop)."""
    exc = record.exc_info[1] if record.exc_info else None
    return exc is None or type(exc).__name__ not in _GONE


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; we finish shutting down
    ourselves (goodbyes to the LAN), so the signal is consumed here instead of killing the loop.

    ``on_exit`` runs in the signal handler itself, before the event loop gets to the shutdown:
    it turns the sessions' screens off, so the updates already queued for them (a burst of
    messages times 100 tabs) cost nothing instead of delaying the exit by seconds."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None] = lambda: None):
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig, frame) -> None:
        self.on_exit()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        logging.getLogger("uvicorn.error").addFilter(_not_a_closed_tab)
        try:
            await asyncio.wait_for(super().shutdown(sockets), SERVER_STOP_SECONDS)
        except TimeoutError:
            log.warning("the web server did not stop within %.1f s; going on", SERVER_STOP_SECONDS)

    @contextlib.contextmanager
    def capture_signals(self):
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def _without_api_docs(app) -> None:
    """FastAPI's /docs, /redoc and /openapi.json describe internals nobody on the LAN needs."""
    app.router.routes[:] = [
        r for r in app.router.routes if getattr(r, "path", None) not in HIDDEN_PATHS
    ]


def build_web_app(node: Node, prefill_name: str = "", static_dir: Path | None = None,
                  limits: SessionLimits | None = None, join_url: str = ""):
    """flet-web's FastAPI app with our session ``main``, without FastAPI's API docs pages.

    Flet's sessions are bounded by ``limits`` (see ``fletchat.sessions``): a closed tab's session is
    released after ``limits.grace`` seconds, and each address holds at most ``limits.per_address``.

    Before Flet's catch-all mount at "/": the ``/relay`` WebSocket for static clients and, when the
    static web build exists (``static_dir``, default ``DEFAULT_STATIC_DIR``), that build at ``/app/``.
    """
    import flet_web.fastapi as flet_fastapi
    from starlette.responses import RedirectResponse

    from . import host_offline
    from .fallback_fonts import FallbackFonts
    from .relay import Relay
    from .webstatic import PrecompressedStaticFiles

    limits = limits or SessionLimits()
    uploads, blobs = file_routes(node.config.data_dir, getattr(node.files, "store", None))
    session_main = make_session_main(lambda: node.hub, device="browser", prefill_name=prefill_name,
                                     uploads=uploads, join_url=join_url)
    app = flet_fastapi.FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    flet_app = flet_fastapi.app(
        session_main,
        assets_dir=str(ASSETS_DIR) if ASSETS_DIR.is_dir() else None,
        app_name=APP_TITLE,
        app_short_name=APP_TITLE,
        app_description="Chat with people on your local network.",
        no_cdn=True,
        session_timeout_seconds=limits.grace,
    )
    _without_api_docs(flet_app)
    from .relay_files import RELAY_UPLOAD_DIR

    relay_uploads = node.config.data_dir / RELAY_UPLOAD_DIR if node.files is not None else None
    app.router.routes.append(Relay(lambda: node.hub, uploads_root=relay_uploads,
                                   opened=uploads.opened).route())
    # Emoji and other scripts: Flutter's fallback fonts from this host, never a CDN.
    app.router.routes.extend(FallbackFonts().routes(("", STATIC_PATH)))
    app.router.routes.extend(host_offline.routes())  # no Rive runtime from a CDN
    app.router.routes.extend([uploads.route(), blobs.route()])  # webfiles: uploads in, files out
    app.router.routes.append(uploads.opened.route())  # webopened: a room's files, opened
    static = static_dir or DEFAULT_STATIC_DIR
    if (static / "index.html").is_file():
        app.add_route(STATIC_PATH, lambda request: RedirectResponse(STATIC_PATH + "/"))
        app.mount(STATIC_PATH, PrecompressedStaticFiles(directory=static, html=True),
                  name="static-app")
        log.info("serving the static web build from %s at %s/", static, STATIC_PATH)
    elif static_dir is not None:
        log.warning(
            "no static web build in %s (make one with: python -m fletchat.webbuild)", static_dir
        )
    app.mount("/", SessionGate(flet_app, limits))
    return app


def file_routes(data_dir: Path, store=None):
    """Browser uploads land in ``<data>/uploads``; stored files are served from the node's blob
    store (``<data>/files/blobs/<sha[:2]>/<sha>``), never from anywhere else."""
    from .files.blobstore import BlobStore
    from .files.sealed_files import OPENED_DIR
    from .webfiles import UPLOAD_DIR, BlobRoute, UploadTickets
    from .webopened import OpenedLinks

    store = store or BlobStore(data_dir / "files")
    opened = OpenedLinks(store.root / OPENED_DIR)
    return UploadTickets(data_dir / UPLOAD_DIR, opened=opened), BlobRoute(store.path, store.root)


def uvicorn_config(app) -> uvicorn.Config:
    """uvicorn's settings for host mode: the WebSocket size limit holds for every route; its
    HTTP protocol notes each connection's socket, so downloads can be paced (``webpace``)."""
    from .webpace import http_protocol

    return uvicorn.Config(
        app, log_level="warning", ws="websockets-sansio", lifespan="on", http=http_protocol(),
        ws_max_size=MAX_WS_MESSAGE_BYTES,
        # Open tabs keep their WebSockets until the browser closes them: without a bound uvicorn's
        # graceful shutdown waits for them forever and SIGTERM is ignored (issue 11, hole 13).
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )


def gate_salt(data_dir: Path) -> bytes:
    """The passphrase gate's salt, kept so cookies outlive a restart; delete it to sign all out."""
    path = data_dir / GATE_SALT_FILE
    try:
        salt = path.read_bytes()
        if len(salt) == 16:
            return salt
    except FileNotFoundError:
        pass
    salt = os.urandom(16)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(salt)
    os.replace(tmp, path)
    return salt


def served_urls(host: str, port: int) -> list[str]:
    """What to open: every LAN address when listening on all interfaces, else the one address."""
    if host in ("0.0.0.0", "::", ""):
        addresses = ["localhost", *lan_addresses(include_ipv6=host == "::")]
        return [url_for(a, port) for a in addresses]
    return [url_for(host, port)]


def gc_pacer(node: Node) -> GcPacer:
    """Host mode's collector pacing (``fletchat.gcpace``): busy while the hub has events; a
    released tab (flet-web holds fewer sessions) makes a full collection due."""
    pacer = GcPacer(sessions=flet_sessions_held)
    node.hub.add_listener(pacer.event)
    return pacer


async def serve_host(
    config: Config, make_node: Callable[[], Node], announce: str = ""
) -> None:
    """Run host mode until interrupted (Ctrl+C / SIGTERM), then leave the LAN cleanly.

    The port is taken first: a busy port is reported before anything else is opened.
    """
    sock = bind_socket(config.host, config.port)
    try:
        node = make_node()
    except BaseException:
        sock.close()
        raise
    urls = served_urls(config.host, config.port)
    app = build_web_app(node, config.name, config.static_dir, join_url=join_url(urls))
    pacer = gc_pacer(node)
    if config.passphrase:
        from .gate import PassphraseGate

        app = PassphraseGate(app, config.passphrase, salt=gate_salt(config.data_dir))
    loop = asyncio.get_running_loop()
    signalled: list[float] = []

    def on_signal() -> None:
        """In the signal handler: the tabs' screens go off, and the LAN goodbyes start on the
        loop's next turn, while uvicorn is still closing the tabs (not after it)."""
        node.hub.screens_off = True
        if not signalled:
            signalled.append(time.monotonic())
            loop.call_soon_threadsafe(node.begin_goodbyes)

    server = _Server(uvicorn_config(app), on_exit=on_signal)
    try:
        await node.start()
        pacer.start()
        if announce:
            print(announce, flush=True)
        print(f"Flet Chat is running in host mode on port {config.port}. Open:", flush=True)
        for url in urls:
            print(f"  {url}", flush=True)
        banner = join_banner(urls)
        if banner:
            print(banner, flush=True)
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        node.hub.screens_off = True
        await pacer.stop()
        began = time.monotonic()
        if signalled:
            log.info("stop: web server closed %.3f s after the signal", began - signalled[0])
        # A second Ctrl+C (or uv forwarding the first one again) must not cut the goodbyes short.
        stopping = asyncio.ensure_future(node.stop(GOODBYE_SECONDS, STORE_CLOSE_SECONDS))
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            await stopping
            raise
        log.info("said goodbye and closed the store in %.2f s (%.2f s after the signal)",
                 time.monotonic() - began, time.monotonic() - (signalled or [began])[0])


def run_host(config: Config, make_node: Callable[[], Node], announce: str = "") -> None:
    """Host mode until SIGTERM / Ctrl+C; then the process ends at once.

    Everything has said goodbye and the store is closed when ``serve_host`` returns; what is left
    is the interpreter tearing down every session's controls one object at a time (3-4 s for 100
    tabs on a loaded host, measured for issue 11), which nobody needs: skipped. The process ends
    from inside the loop, so neither do the tabs' tasks get cancelled and run to their end one by
    one (what ``asyncio.run`` does with the tasks left when its coroutine returns)."""

    async def serve_then_exit() -> None:
        await serve_host(config, make_node, announce)
        end_process(0)

    asyncio.run(serve_then_exit())


def end_process(code: int) -> None:
    """Flush the logs and stdout/stderr, then exit without the interpreter's teardown."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
