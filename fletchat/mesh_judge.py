"""A peer's messages, judged: the hub decides on each, acks mean stored, refusals are said.

Live messages are judged at once on the loop; catch-up pages go to the link's page task, which
asks the hub on a worker thread, in the order the link delivered them (a page in one pass:
``receive_page``, the same verdicts as ``receive`` for each message in turn). A page's
signatures are checked on another worker thread as soon as it is read (libsodium releases the
GIL), so the next page is verified while this one is judged: nothing is judged before its check.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fletchat.events import Acceptance
from fletchat.mesh_link import Link, LinkCore
from fletchat.model import Message
from fletchat.peer.connection import Messages, check_signatures
from fletchat.peer.policy import Sender
from fletchat.protocol import encode_refused

log = logging.getLogger("fletchat.mesh")
PAGES_AHEAD = 2  # catch-up pages of one link waiting to be judged before its read loop waits


class MessageJudge:
    """The one path for every message from a peer, shared by all of the mesh's links."""

    def __init__(self, core: LinkCore) -> None:
        self.core = core

    async def on_messages(self, link: Link, event: Messages) -> None:
        """The one path for every message from a peer: the hub decides; acks mean stored.
        A live message is judged here, at once, unless catch-up pages of this link are still
        being judged (then it waits its turn: one link's messages are judged in the order they
        came). A catch-up page's signatures are checked on a worker thread from the moment it is
        read; the link's page task judges the checked pages in order on another, so one page is
        verified while the one before it is judged and the read loop decodes the next frames
        (at most ``PAGES_AHEAD`` pages wait; then the read loop waits, and TCP pushes back)."""
        if link.pages is None and (event.live or len(event.unchecked) <= 1):
            self._settle(link, await self._verdicts(link, event, off_loop=False))
            return
        loop = asyncio.get_running_loop()
        if link.pages is None:
            link.pages = asyncio.Queue(PAGES_AHEAD)
            link.judging = loop.create_task(self._page_task(link))
            link.tasks.append(link.judging)
        checked = None
        if len(event.unchecked) > 1:  # a page: its signatures checked now, on a worker thread
            checked = loop.run_in_executor(None, check_signatures, self.core.trust, event,
                                           link.conn.sender)
            checked.add_done_callback(_retrieved)
        pages = link.pages
        link.putting += 1  # the page task does not leave while this waits for room
        put = False
        try:
            await pages.put((event, checked))
            put = True
        finally:
            link.putting -= 1
            if not put and not link.putting and pages.empty():  # cancelled: wake the task
                pages.put_nowait((None, None))

    async def _page_task(self, link: Link) -> None:
        """Judges a link's queued events in order; goes away when the queue is empty and no
        read waits to add to it. (A read woken for room puts its event only when it next runs:
        two live events judged in a row without a pause could empty the queue first, and a task
        that left then stranded that event in a queue nobody read: a message lost, never
        acknowledged, until catch-up sent it again.)"""
        pages = link.pages
        assert pages is not None
        while True:
            event, checked = await pages.get()
            if event is None:  # a read that was to put here was cancelled
                if pages.empty() and not link.putting:
                    link.pages = None
                    return
                continue
            try:
                if checked is not None:
                    event = await checked
                verdicts = await self._verdicts(link, event, off_loop=len(event.unchecked) > 1
                                                or len(event.items) > 1)
            except Exception:
                log.exception("judging messages from %s failed", link.describe())
                verdicts = ([], [])
            self._settle(link, verdicts)
            if pages.empty() and not link.putting:
                link.pages = None
                return

    async def _verdicts(self, link: Link, event: Messages, *, off_loop: bool
                        ) -> tuple[list[str], list[tuple[str, str]]]:
        peer = link.peer
        assert peer is not None
        if event.items or event.unchecked:
            link.last_message = time.time()
        sender = link.conn.sender
        if off_loop:
            return await asyncio.to_thread(self._check_and_judge, peer.id, event, sender)
        return self._check_and_judge(peer.id, event, sender)

    def _check_and_judge(self, peer_id: str, event: Messages, sender: Sender | None
                         ) -> tuple[list[str], list[tuple[str, str]]]:
        return self._judge(peer_id, check_signatures(self.core.trust, event, sender))

    def _settle(self, link: Link, verdicts: tuple[list[str], list[tuple[str, str]]]) -> None:
        """Say the refusals; queue the acks (sent once the store has committed them)."""
        stored, refused = verdicts
        if refused:
            for frame in encode_refused(refused):
                self.core.send(link, frame)
        if stored:
            link.acks.put_nowait(tuple(stored))

    def _judge(self, peer_id: str, event: Messages) -> tuple[list[str], list[tuple[str, str]]]:
        """(ids to acknowledge once stored, (id, reason) refused): the hub's verdict on each
        (a catch-up page's in one pass: ``receive_page``)."""
        refused = list(event.refused)
        stored: list[str] = []
        for msg, acc in self._verdicts_of(peer_id, event):
            if acc.stored:
                if msg.origin == peer_id:
                    stored.append(msg.id)
            else:
                refused.append((msg.id, acc.reason or "refused"))
        return stored, refused

    def _verdicts_of(self, peer_id: str, event: Messages) -> list[tuple[Message, Acceptance]]:
        app = self.core.app
        if not event.live and len(event.items) > 1:
            msgs = [item.message for item in event.items]
            try:
                verdicts = app.receive_page(
                    [(item.message, item.verified) for item in event.items], peer_id)
            except Exception:  # nothing of the page is acknowledged; the sender keeps it
                log.exception("receiving a page of %d from %s failed", len(msgs), peer_id)
                return []
            return list(zip(msgs, verdicts, strict=True))
        out = []
        for item in event.items:
            try:
                acc = app.receive(item.message, peer_id, verified=item.verified,
                                  relay=event.live)
            except Exception:
                log.exception("receiving %s failed", item.message.id)
                continue
            out.append((item.message, acc))
        return out


def _retrieved(future: asyncio.Future[Messages]) -> None:
    """A check whose link went away unjudged: its outcome is dropped, without a warning."""
    if not future.cancelled():
        future.exception()
