"""Baseline for discovery and leave: plain python-zeroconf, nothing of Flet Chat.

Runs inside a namespaced host (``ip netns exec``) and prints JSON lines the bench timestamps:

    python bench/zc_probe.py browse            {"event": "added"|"removed", "name": ...}
    python bench/zc_probe.py register NAME     {"event": "ready"} once the register call is made;
                                               EOF on stdin (or SIGTERM) -> unregister (goodbye)
    python bench/zc_probe.py hold PORT         a plain TCP server; prints {"event":"ready"}, then
                                               {"event": "eof"} when the connected peer dies
    python bench/zc_probe.py connect HOST PORT {"event": "ready"} once connected; holds the socket

The service type differs from the app's, so the probe and the app never see each other.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import threading

SERVICE_TYPE = "_fcbench._tcp.local."


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def browse() -> None:
    from zeroconf import IPVersion, ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

    azc = AsyncZeroconf(ip_version=IPVersion.V4Only)

    def handler(zeroconf, service_type, name, state_change) -> None:
        if state_change is ServiceStateChange.Added:
            emit("added", name=name)
        elif state_change is ServiceStateChange.Removed:
            emit("removed", name=name)

    browser = AsyncServiceBrowser(azc.zeroconf, SERVICE_TYPE, handlers=[handler])
    emit("ready")
    await wait_stdin_eof()
    await browser.async_cancel()
    await azc.async_close()


async def register(name: str) -> None:
    import ifaddr
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    ips = [
        ip.ip
        for a in ifaddr.get_adapters()
        for ip in a.ips
        if isinstance(ip.ip, str) and not ip.ip.startswith("127.")
    ]
    azc = AsyncZeroconf(ip_version=IPVersion.V4Only)
    info = AsyncServiceInfo(
        SERVICE_TYPE,
        f"{name}.{SERVICE_TYPE}",
        addresses=[socket.inet_aton(ip) for ip in ips],
        port=9,
        properties={"id": name},
        server=f"{name}.local.",
    )
    emit("ready")  # like the app's "ready": zeroconf is up; probing and announcing follow
    done = await azc.async_register_service(info)
    emit("probed")
    await done
    emit("registered")
    await wait_stdin_eof()
    await (await azc.async_unregister_service(info))  # the goodbye is sent by the returned task
    await azc.async_close()
    emit("closed")


async def wait_stdin_eof() -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def read() -> None:
        for _ in sys.stdin:
            pass
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=read, daemon=True).start()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()


def hold(port: int) -> None:
    srv = socket.create_server(("0.0.0.0", port))
    emit("ready")
    conn, _ = srv.accept()
    emit("connected")
    while conn.recv(4096):
        pass
    emit("peer_gone")


def connect(host: str, port: int) -> None:
    s = socket.create_connection((host, port))
    emit("ready")
    for _ in sys.stdin:
        pass
    s.close()


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "browse":
        asyncio.run(browse())
    elif mode == "register":
        asyncio.run(register(argv[1]))
    elif mode == "hold":
        hold(int(argv[1]))
    elif mode == "connect":
        connect(argv[1], int(argv[2]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
