"""Flet Chat entry point (the file `flet build` packages for every target): pick a mode, run it.

Modes: desktop window (display + Flet's desktop client), host mode (web server; `--web`, or the
fallback when no window can open), headless peer (`--headless`), the network doctor (`--doctor`),
and the browser client: under Pyodide (`sys.platform == "emscripten"`, the `flet build web` site and
`python -m fletchat.webbuild`) this same file runs `webclient`, which chats through the host that
served the page. Logic lives in `fletchat/` and `webclient/`.
"""

from __future__ import annotations

import sys

# Each mode imports only what it runs: the browser has no uvicorn, zeroconf, websockets or
# cryptography (the web build's dependencies leave them out), and Flet plus the web server are
# heavy for the headless peer.


def in_browser() -> bool:
    """Pyodide (Python compiled to WebAssembly, in a browser's worker)."""
    return sys.platform == "emscripten"


def run_in_browser() -> None:
    """The static web client: Flet's Pyodide connection, the relay to the serving host."""
    import flet as ft

    from webclient.main import main as browser_main

    ft.run(browser_main)


def main(argv: list[str]) -> int:
    import logging

    from fletchat.config import load_config
    from fletchat.identity import DataDirInUse, DataDirLock
    from fletchat.netinfo import PortInUse
    from fletchat.node import Node

    config = load_config(argv)
    logging.basicConfig(
        level=getattr(logging, config.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if config.doctor:  # no data dir, no lock: it may run beside a running Flet Chat
        import asyncio

        from fletchat.doctor import check

        print("Checking the network (a few seconds)...", flush=True)
        diagnosis = asyncio.run(check(config.peers, peer_port=config.peer_port))
        print(diagnosis.text(), flush=True)
        return 0 if diagnosis.ok else 1
    if config.log_level != "DEBUG":
        # zeroconf logs a traceback for every interface it cannot send on (e.g. IPv6 loopback);
        # Flet's web server and the WebSocket library narrate their start-up at INFO.
        logging.getLogger("zeroconf").setLevel(logging.ERROR)
        for chatty in ("flet", "flet_web", "fletchat.mesh.websockets"):
            logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    lock = DataDirLock(config.data_dir)
    try:
        lock.acquire()
        if config.headless:
            from fletchat.headless import run_headless

            run_headless(config, Node(config, "headless"))
            return 0
        from fletchat.desktop import desktop_unavailable_reason, local_device_kind, run_desktop
        from fletchat.host import run_host

        reason = "--web / FLETCHAT_WEB asked for it" if config.web else desktop_unavailable_reason()
        if reason is None:
            reason = run_desktop(Node(config, local_device_kind()), config.name)
            if reason is None:
                return 0
        run_host(config, lambda: Node(config, "web-host"), f"Host mode: {reason}.")
        return 0
    except (PortInUse, DataDirInUse) as err:
        print(f"fletchat: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl+C: everything has already said goodbye
        return 130
    finally:
        lock.release()


if __name__ == "__main__":
    if in_browser():
        run_in_browser()  # returns at once: the browser's event loop runs the app
    else:
        sys.exit(main(sys.argv[1:]))
