"""Run inside a test namespace: a discovery peer (or a hostile advertiser) that reports in JSON lines.

Why a subprocess: each virtual LAN host is a network namespace, and a process joins one only at
start (``ip netns exec``). tests/test_discovery.py drives these and reads their stdout.

    python tests/nsrun_discovery.py peer --id ID --name NAME --port N [--listen]
        prints {"ev": "ready"|"found"|"lost"|"log"|"stopped", "t": unix time, ...} lines.
        stdin: "rename NEW NAME" re-announces; "quit" (or EOF, or SIGTERM) stops cleanly (goodbye).
        --listen also accepts TCP on the port and answers "fletchat-test <id>\\n" (a stand-in for
        the mesh, to show unicast works where multicast is filtered).
    python tests/nsrun_discovery.py hostile --ip IP
        registers malformed adverts with raw zeroconf, prints {"ev": "ready", "names": [...]}
        and keeps them up until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import socket
import sys
import threading
import time


def emit(ev: str, **fields: object) -> None:
    print(json.dumps({"ev": ev, "t": time.time(), **fields}), flush=True)


class JsonLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        emit("log", level=record.levelname, logger=record.name, msg=record.getMessage())


def stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """Read stdin on a thread (portable, and keeps the loop free)."""
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n"))
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def run_peer(args: argparse.Namespace) -> None:
    from fletchat.discovery import Discovery

    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str | None] = asyncio.Queue()
    loop.add_signal_handler(signal.SIGTERM, commands.put_nowait, None)
    threading.Thread(target=stdin_lines, args=(loop, commands), daemon=True).start()

    server = None
    if args.listen:

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(f"fletchat-test {args.id}\n".encode())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, host=None, port=args.port)

    disc = Discovery(
        peer_id=args.id,
        name=args.name,
        port=args.port,
        device=args.device,
        version=args.version,
        on_found=lambda a: emit("found", **dataclasses.asdict(a)),
        on_lost=lambda peer_id: emit("lost", id=peer_id),
        interfaces=args.interfaces,
    )
    await disc.start()
    emit("ready", instance=disc.instance, addresses=disc.addresses)
    while True:
        cmd = await commands.get()
        if cmd is None or cmd == "quit":
            break
        if cmd.startswith("rename "):
            await disc.update_name(cmd.removeprefix("rename "))
            emit("renamed", name=disc.name)
    await disc.stop()
    if server is not None:
        server.close()
    emit("stopped")


async def run_hostile(args: argparse.Namespace) -> None:
    """Adverts a careless or hostile host could send; none of them may reach on_found."""
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    from fletchat.discovery import SERVICE_TYPE

    def txt(entries: list[bytes]) -> bytes:  # raw DNS TXT rdata: length-prefixed strings
        return b"".join(bytes([len(e)]) + e for e in entries)

    good = [b"v=2", b"port=9000", b"device=desktop"]
    cases = {
        "bad-id": txt([b"id=not an id!", b"name=Mallory", *good]),
        "long-name": txt([b"id=hostile1", b"name=" + b"M" * 249, *good]),
        "huge": txt(
            [b"id=hostile2", b"name=Mallory", *good]
            + [b"k%02d=" % i + b"x" * 249 for i in range(24)]
        ),
        "not-utf8": txt([b"id=hostile3", b"name=\xff\xfe", *good]),
        "no-name": txt([b"id=hostile4", *good]),
        "ctrl-name": txt([b"id=hostile5", b"name=Mal\x1b[2Jlory", *good]),
        "port-mismatch": txt([b"id=hostile6", b"name=Mallory", b"v=2", b"port=1", b"device=x"]),
    }
    azc = AsyncZeroconf(interfaces=[args.ip], ip_version=IPVersion.V4Only)
    infos = []
    for label, rdata in cases.items():
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{label}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(args.ip)],
            port=9000,
            properties=rdata,
            server=f"{label}-host.local.",
        )
        infos.append(info)
    for info in infos:  # cooperating_responders: skip the 1.5 s conflict probing
        await azc.async_register_service(info, cooperating_responders=True, strict=False)
    emit("ready", names=[i.name for i in infos], sizes={k: len(v) for k, v in cases.items()})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await azc.async_close()
    emit("stopped")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    peer = sub.add_parser("peer")
    peer.add_argument("--id", required=True)
    peer.add_argument("--name", required=True)
    peer.add_argument("--port", type=int, required=True)
    peer.add_argument("--device", default="headless")
    peer.add_argument("--version", type=int, default=2)
    peer.add_argument("--interfaces", nargs="*", default=None)
    peer.add_argument("--listen", action="store_true")
    hostile = sub.add_parser("hostile")
    hostile.add_argument("--ip", required=True)
    args = parser.parse_args()

    log = logging.getLogger("fletchat.discovery")
    log.setLevel(logging.INFO)
    log.addHandler(JsonLogHandler())
    asyncio.run(run_peer(args) if args.mode == "peer" else run_hostile(args))


if __name__ == "__main__":
    main()
