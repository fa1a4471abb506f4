"""Catch-up: what to send a peer that is behind, and how fast (pure; time passed in).

After the handshake each side sends ``have`` (its per-origin summary); each answers with what the
other lacks, in ``sync`` batches of at most ``MAX_SYNC_MESSAGES``, paced to stay under the
receiver's flood limits (every message counts there, also inside ``sync``), and behind a bounded
send backlog. An interrupted exchange resumes on the next connection, because the next ``have``
reflects what did arrive; ``have`` is sent again every ``ANTI_ENTROPY_SECONDS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fletchat.protocol import MESSAGE_BURST, MESSAGES_PER_SECOND, RATE_BURST, RATE_FRAMES_PER_SECOND

ANTI_ENTROPY_SECONDS = 20.0
PACE_SHARE = 0.9  # of the receiver's rates; the rest is left for live frames
LIVE_RESERVE = 1000  # messages of the receiver's burst left for live frames during a catch-up
MAX_BACKLOG_FRAMES = 256  # catch-up waits while more frames than this are queued for the peer


@dataclass
class Pacer:
    """Two token buckets mirroring the receiver's (frames and messages): ``PACE_SHARE`` of their
    rates, half the frame burst and the message burst less ``LIVE_RESERVE`` (10,000 messages go
    at once). ``wait(messages, now)`` says how long to wait before a
    frame carrying ``messages`` may go; ``spend`` books it."""

    frames_per_second: float = RATE_FRAMES_PER_SECOND * PACE_SHARE
    frame_burst: float = RATE_BURST / 2
    messages_per_second: float = MESSAGES_PER_SECOND * PACE_SHARE
    message_burst: float = MESSAGE_BURST - LIVE_RESERVE
    _frames: float = field(init=False)
    _messages: float = field(init=False)
    _last: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._frames = self.frame_burst
        self._messages = self.message_burst

    def _refill(self, now: float) -> None:
        elapsed = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        self._frames = min(self.frame_burst, self._frames + elapsed * self.frames_per_second)
        self._messages = min(
            self.message_burst, self._messages + elapsed * self.messages_per_second
        )

    def wait(self, messages: int, now: float) -> float:
        self._refill(now)
        need_frames = max(0.0, 1 - self._frames) / self.frames_per_second
        need_msgs = max(0.0, min(messages, self.message_burst) - self._messages)
        return max(need_frames, need_msgs / self.messages_per_second)

    def spend(self, messages: int, now: float) -> None:
        self._refill(now)
        self._frames -= 1
        self._messages -= messages


def next_after(batch_len: int, limit: int, last: tuple[str, int] | None) -> tuple[str, int] | None:
    """Where the next ``missing`` query starts, or None when this batch was the last."""
    return last if batch_len >= limit and last is not None else None
