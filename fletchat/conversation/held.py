"""What the hub holds in memory of the reactions to one message: who reacted, and only the latest
reaction per (person, emoji) — all a row can show (``reducer.reduce_row`` keeps the latest per
person and emoji, and counts at most ``MAX_REACTORS_PER_MESSAGE`` people).

Without this, catch-up (bounded only by the per-origin quotas) could pile tens of thousands of
reactions from throw-away identities onto one message, all held in memory for good and loaded
again at every start. Pure; ``ConvState`` holds one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import Message
from .reducer import MAX_REACTORS_PER_MESSAGE

TOO_MANY_REACTORS = f"too many people reacted to this message (at most {MAX_REACTORS_PER_MESSAGE})"

Person = tuple[str, str]  # (origin, name)


@dataclass
class HeldReactions:
    max_people: int = MAX_REACTORS_PER_MESSAGE
    _people: dict[str, set[Person]] = field(default_factory=dict)  # target -> who reacted
    _latest: dict[tuple[str, str, str, str], Message] = field(default_factory=dict)

    def refusal(self, target: str, person: Person) -> str:
        """Why a reaction by ``person`` may not be taken ("" if it may): a full message takes
        no newcomer; who already reacted can always change their mind."""
        people = self._people.get(target, ())
        if person in people or len(people) < self.max_people:
            return ""
        return TOO_MANY_REACTORS

    def keep(self, reaction: Message) -> tuple[bool, str]:
        """(hold ``reaction``?, id of the held reaction it replaces or ""). Later stamps win, as
        in the reducer (``(hlc, id)`` order)."""
        assert reaction.conv is not None
        target = reaction.conv.target
        key = (target, reaction.origin, reaction.author, reaction.conv.emoji)
        self._people.setdefault(target, set()).add((reaction.origin, reaction.author))
        old = self._latest.get(key)
        if old is not None and (old.hlc, old.id) >= (reaction.hlc, reaction.id):
            return False, ""
        self._latest[key] = reaction
        return True, old.id if old is not None else ""
