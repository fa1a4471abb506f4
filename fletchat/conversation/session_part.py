"""One person's conversation actions (mixed into ``session.HubSession``): reply, react, edit,
delete, typing, read marks and rename. Each builds a message of its kind and posts it through the
hub like any other, so the same rules (and the same author-only check) hold here as on the LAN."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..model import (
    KIND_CHAT,
    KIND_DELETE,
    KIND_EDIT,
    KIND_REACTION,
    KIND_RENAME,
    Message,
    ValidationError,
    new_id,
    validate_channel,
    validate_name,
    validate_text,
)
from .emoji import SHORTCODES
from .fields import ConvFields
from .kinds import NOT_AUTHOR, ReplyRef, make_snippet, validate_emoji
from .reducer import toggle
from .signals import TypingThrottle, person_key
from .state import TOO_MANY_EDITS, TOO_MANY_REACTIONS

if TYPE_CHECKING:
    from ..hub import Hub


ROOM_NO_KEY_EDIT = "Open the private room with its passphrase to edit this message."
ROOM_PLAIN_EDIT = ("This message was written in the clear; it cannot be edited in the private "
                   "room (its edit would have to be in the clear too).")


def _now() -> float:
    return round(time.time(), 3)


class ConvSessionMethods:
    hub: Hub
    key: str
    name: str | None
    last_name: str | None
    device: str
    room_keys: dict[str, bytes]
    owner: bytes | None
    check_name_free: Callable[..., None]
    send_read_receipts: bool = True
    send_typing: bool = True

    def _me(self) -> str:
        if self.name is None:
            raise ValidationError("Join the chat first.")
        return self.name

    def post_own(self, msg: Message) -> Message:
        """Post what this session wrote; a chat message is recorded as its owner's first
        (``authors``: before the post, as an edit can follow at once)."""
        if self.owner is not None and msg.kind == KIND_CHAT:
            self.hub.authors.wrote(msg.id, self.owner)
        return self.hub.post(msg) or msg

    def spend(self) -> None:
        """Take one from the session's send budget (``HubSession``); ``ValidationError`` when
        it is spent. Every action that posts a stored, broadcast message pays it."""
        raise NotImplementedError

    def typing_ended(self, channel: str) -> None:
        """This person sent a message in ``channel``: receivers took it as the end of their
        typing, so the next keystroke must signal again rather than wait out the throttle."""
        throttle = self._throttles().get(channel)
        if throttle is not None:
            throttle.sent_message()

    def reply(self, parent: Message, raw_text: str, channel: str) -> Message | None:
        """Answer ``parent``; its quote travels along (none in a private room: it would leak)."""
        name = self._me()
        text = validate_text(raw_text)
        if text is None:
            return None
        channel = validate_channel(channel)
        self.spend()  # a reply is a chat message: the same budget as a send
        quote = "" if parent.channel in self.room_keys else make_snippet(
            self.hub.conv.row_state(parent).shown_text)
        ref = ReplyRef(parent.id, parent.author, quote)
        msg = Message(new_id(), KIND_CHAT, name, self.hub.peer_id, text, _now(), channel,
                      conv=ConvFields(reply=ref))
        key = self.room_keys.get(channel)
        if key is not None:
            from dataclasses import replace

            from ..rooms import seal

            msg = replace(msg, text=seal(key, channel, msg.id, msg.text))
        self.typing_ended(channel)
        return self.post_own(msg)

    def react(self, target: Message, emoji: str) -> Message:
        """Toggle this person's ``emoji`` on ``target`` (``:shortcode:`` accepted)."""
        name = self._me()
        if emoji.startswith(":") and emoji.endswith(":") and len(emoji) > 2:
            emoji = SHORTCODES.get(emoji.strip(":"), emoji)
        emoji = validate_emoji(emoji)
        if target.kind != KIND_CHAT:
            raise ValidationError("Only messages can be reacted to.")
        if not self.hub.conv.allow_local(KIND_REACTION, person_key(self.hub.peer_id, name)):
            raise ValidationError(TOO_MANY_REACTIONS.capitalize() + ".")
        # a stored message every device gets, and a fresh name on each connection escapes the
        # per-person limit: the send budget too (this address's and the device's)
        self.spend()
        state = self.hub.conv.row_state(target, (self.hub.peer_id, name))
        fields = ConvFields(target=target.id, emoji=emoji, on=toggle(state, emoji))
        return self.post_own(Message(new_id(), KIND_REACTION, name, self.hub.peer_id, "", _now(),
                                  target.channel, conv=fields))

    def _own(self, target: Message) -> str:
        name = self._me()
        if target.kind != KIND_CHAT:
            raise ValidationError("Only chat messages can be edited or deleted.")
        if target.origin != self.hub.peer_id or target.author != name:
            raise ValidationError(NOT_AUTHOR)
        self.hub.authors.check(target.id, target.ts, self.owner)  # a name is not a person
        if self.hub.conv.row_state(target).deleted:
            raise ValidationError("This message was deleted.")
        if not self.hub.conv.allow_local(KIND_EDIT, person_key(self.hub.peer_id, name)):
            raise ValidationError(TOO_MANY_EDITS.capitalize() + ".")
        # each edit or delete is a stored message every device gets, and a fresh name per
        # connection escapes the per-person limit: the send budget too, as reactions pay it
        self.spend()
        return name

    def edit(self, target: Message, raw_text: str) -> Message:
        name = self._own(target)
        text = validate_text(raw_text)
        if text is None:
            raise ValidationError("An edit cannot empty a message: delete it instead.")
        msg = Message(new_id(), KIND_EDIT, name, self.hub.peer_id, text, _now(), target.channel,
                      conv=ConvFields(target=target.id))
        return self.post_own(self._sealed_like(target, msg))

    def _sealed_like(self, target: Message, edit: Message) -> Message:
        """An edit is sealed exactly when its message is (a private room's text never goes in
        the clear), with the room key, under the edit's own id."""
        from dataclasses import replace

        from ..rooms import is_sealed, seal

        key = self.room_keys.get(target.channel)
        if not is_sealed(target.text):
            if key is not None:
                raise ValidationError(ROOM_PLAIN_EDIT)
            return edit
        if key is None:
            raise ValidationError(ROOM_NO_KEY_EDIT)
        return replace(edit, text=seal(key, edit.channel, edit.id, edit.text))

    def delete(self, target: Message) -> Message:
        name = self._own(target)
        edits = tuple(sorted(
            e.seq for e in self.hub.conv.events_for(target.id)
            if e.kind == KIND_EDIT and e.origin == target.origin and e.author == name and e.seq
        ))[-64:]
        fields = ConvFields(target=target.id, target_seq=target.seq, erases=edits)
        return self.post_own(Message(new_id(), KIND_DELETE, name, self.hub.peer_id, "", _now(),
                                  target.channel, conv=fields))

    # ---- live signals ----
    def typing(self, channel: str) -> None:
        """Called on every keystroke; at most one signal per ``TYPING_INTERVAL`` leaves."""
        if self.name is None or not self.send_typing:
            return
        throttle = self._throttles().setdefault(channel, TypingThrottle())
        if throttle.should_send(time.monotonic()):
            self.hub.conv.local_typing(self.name, validate_channel(channel))

    def _throttles(self) -> dict[str, TypingThrottle]:
        found = self.__dict__.get("_typing_throttles")
        if found is None:
            found = self.__dict__["_typing_throttles"] = {}
        return found

    def typing_names(self, channel: str) -> list[str]:
        me = person_key(self.hub.peer_id, self.name or "")
        return self.hub.conv.typing_names(channel, me)

    def mark_read(self, channel: str, upto: Message) -> None:
        if self.name is None or not self.send_read_receipts or not upto.hlc:
            return
        self.hub.conv.local_read(self.name, validate_channel(channel), upto.hlc)

    def rename(self, raw_name: str) -> Message:
        """Change the display name; others see "OLD is now known as NEW"."""
        old = self._me()
        new = validate_name(raw_name)
        if new == old:
            raise ValidationError("That is already your name.")
        # Someone's name (online, here or on a device; or held for the browser that left
        # under it): taking it would pass for them, and read their direct messages here.
        self.check_name_free(new, self.owner, renaming=True)
        self.spend()
        self.name = self.last_name = new
        self.hub.session_joined(self.key, new, self.device)
        return self.post_own(Message(new_id(), KIND_RENAME, new, self.hub.peer_id, "", _now(),
                                  conv=ConvFields(was=old)))

