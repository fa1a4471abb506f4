"""Flet Chat entry point (the file `flet build` packages): read options, pick a mode, run it.

Modes: desktop window (display + Flet's desktop client), host mode (web server; `--web`, or the
fallback when no window can open), headless peer (`--headless`). Logic lives in `fletchat/`.
"""

from __future__ import annotations

import logging
import sys

from fletchat.config import load_config
from fletchat.identity import DataDirInUse, DataDirLock
from fletchat.netinfo import PortInUse
from fletchat.node import Node

# Each mode imports only what it runs (Flet and the web server are heavy for the headless peer).


def main(argv: list[str]) -> int:
    config = load_config(argv)
    logging.basicConfig(
        level=getattr(logging, config.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
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
    sys.exit(main(sys.argv[1:]))
