"""Runs beside one host (in its namespace for figure 14): N headless Flet tabs on the host's
``/ws`` and, optionally, a static-client tab on ``/relay`` that sends. JSON lines on stdout, in
``time.monotonic()`` (one clock for every process on the machine).

``python -m bench.ns_tabs PORT N`` prints ``{"ev": "ready", "tabs": N, "t": t}`` once the tabs are open,
then ``{"ev": "seen", "marker": M, "first": t, "last": t, "tabs": k}`` once all N tabs have had a
patch carrying marker M (a word ``scaleprobe…`` in a new message), and
``{"ev": "closed", "tab": i, "code": c, "reason": r}`` when the host closes a tab. Lines on stdin:
``send MARKER`` sends a message carrying it through the relay (``{"ev": "sent", "t": t}``),
``status MARKER`` says how many tabs have had it and how many are still open
(``{"ev": "status", "marker": M, "got": k, "open": o, "closed": c, "repeats": r}``), ``quit``
ends.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time

from .sessions import _source, open_flet_session

MARKER = re.compile(rb"scaleprobe[0-9a-z]+")
INVOKE = b"\x00\x92\x05"  # a binary frame of [INVOKE_METHOD, {...}] (flet's MessageAction 5)


def say(**event: object) -> None:
    print(json.dumps(event), flush=True)


Seen = dict[bytes, dict[int, float]]  # marker -> tab -> when its first patch with it came
repeats: dict[bytes, int] = {}  # marker -> later patches that named it again, over all tabs


async def _open_tabs(port: int, n: int, seen: Seen) -> tuple[list, list]:
    """The tabs, each read from as soon as it is open (an unread socket stops answering the
    host's keepalive pings while the others open)."""
    deadline = time.monotonic() + 180
    while True:  # the host may still be starting
        try:
            tabs = [await open_flet_session(port, _source(0), timeout=120)]
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    readers = [asyncio.create_task(_read(tabs[0], 0, seen, n))]
    for start in range(1, n, 20):
        batch = range(start, min(n, start + 20))
        opened = await asyncio.gather(*(open_flet_session(port, _source(i), timeout=120)
                                        for i in batch))
        readers += [asyncio.create_task(_read(ws, i, seen, n)) for i, ws in zip(batch, opened,
                                                                                 strict=True)]
        tabs += opened
    return tabs, readers


async def _read(ws, tab: int, seen: Seen, n: int) -> None:
    """One tab: answer the page's invoke calls (stored prefs...) with "nothing"; note markers."""
    import msgpack

    async for frame in _frames(ws):
        if isinstance(frame, str):
            frame = frame.encode()
        if frame[:3] == INVOKE:
            call = msgpack.unpackb(frame[1:])[1]
            await ws.send(b"\x00" + msgpack.packb([5, {
                "control_id": call["control_id"], "call_id": call["call_id"],
                "result": None, "error": None}]))
            continue
        for m in set(MARKER.findall(frame)):
            times = seen.setdefault(m, {})
            if tab in times:  # a later patch naming it again (a receipt, a title): not news
                repeats[m] = repeats.get(m, 0) + 1
                continue
            times[tab] = time.monotonic()
            if len(times) == n:
                say(ev="seen", marker=m.decode(), first=min(times.values()),
                    last=max(times.values()), tabs=n)
    say(ev="closed", tab=tab, code=ws.close_code, reason=ws.close_reason or "")


async def main(port: int, n: int) -> None:
    from websockets.asyncio.client import connect

    from fletchat.relay_protocol import RELAY_PATH, encode_client_hello, encode_client_send

    seen: Seen = {}
    tabs, readers = await _open_tabs(port, n, seen)
    relay = await connect(f"ws://127.0.0.1:{port}{RELAY_PATH}", family=2,
                          local_addr=("127.0.1.1", 0), open_timeout=120,
                          ping_interval=None)  # a loaded host answers late; it pings itself
    await relay.send(encode_client_hello("Sender"))
    drain = asyncio.create_task(_drain(relay))
    say(ev="ready", tabs=n, t=time.monotonic())
    loop = asyncio.get_running_loop()
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        cmd, _, arg = line.partition(" ")
        if cmd == "send":
            t = time.monotonic()
            await relay.send(encode_client_send(f"hello from host 1 {arg}"))
            say(ev="sent", marker=arg, t=t)
        elif cmd == "status":
            shut = sum(1 for ws in tabs if ws.close_code is not None)
            say(ev="status", marker=arg, got=len(seen.get(arg.encode(), ())),
                open=len(tabs) - shut, closed=shut, repeats=repeats.get(arg.encode(), 0))
        elif cmd == "quit":
            break
    drain.cancel()
    for r in readers:
        r.cancel()
    await asyncio.gather(*(ws.close() for ws in tabs), relay.close(), return_exceptions=True)


async def _frames(ws):
    """A tab's frames until it closes (a closed tab is reported missing by the bench, not here)."""
    from websockets.exceptions import ConnectionClosed

    try:
        async for frame in ws:
            yield frame
    except ConnectionClosed:
        return


async def _drain(ws) -> None:
    async for _ in _frames(ws):
        pass


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
