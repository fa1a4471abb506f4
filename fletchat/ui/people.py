"""The people panel: who is online ("(you)" on one's own row; a click on someone else opens a
direct message), the LAN devices with their short fingerprints and a block button, blocked
devices, "Check network" and "Device details" (this install's fingerprint)."""

from __future__ import annotations

import time
from collections.abc import Callable

import flet as ft

from ..events import Online
from ..model import avatar_color, initials
from .device_details import DETAILS_BUTTON
from .network_check import CHECK_NETWORK
from .text import BLOCK_TOOLTIP, BLOCKED_TITLE, short_fingerprint
from .tile_chunks import ChunkedTiles
from .updates import Isolated

DETAIL_STYLE = ft.TextStyle(size=11, color=ft.Colors.ON_SURFACE_VARIANT,
                            weight=ft.FontWeight.NORMAL)
# Tiles one tab shows at most; the rest are found by name. A tile for everyone in every tab
# made a host's memory grow with tabs x people (about 1.2 MiB per tab at 100 people, 250,000
# tiles at 500; issue 12), and past a screenful a long list is read by searching anyway.
PEOPLE_SHOWN = 30
FIND_HINT = "Find someone"


class PersonTile(Isolated, ft.Semantics):
    """A person's line, built once per person (and "(you)"): a roster update of the panel does
    not walk into the tiles it keeps, and how long they have been online changes in place
    (``show_online_for``: one span and the label, not a new tile in every tab)."""

    # set by online_tile (not fields: Flet neither tracks nor sends them)
    _person: Online
    _shown_name: str
    _online_for: str
    _detail: ft.TextSpan

    @property
    def person(self) -> Online:
        return self._person

    def show_online_for(self, duration: str) -> bool:
        """Say ``duration``; True when that changed what the tile shows (update it then)."""
        if duration == self._online_for:
            return False
        self._online_for = duration
        detail = person_detail(self._person, duration)
        self.label = f"{self._shown_name} online, {detail}"
        self._detail.text = f"\n{detail}"
        return True


class DeviceTile(Isolated, ft.Row):
    """A LAN device's line; kept like ``PersonTile``."""


def person_detail(person: Online, duration: str) -> str:
    where = "on this host" if person.local else "on another device"
    return f"{person.device} · {where} · {duration}"


def online_tile(
    person: Online, now: float | None = None, on_click: Callable | None = None,
    me: bool = False,
) -> PersonTile:
    """One line of the people list: avatar, name ("(you)" on one's own), what they use, where
    and how long online; a click opens a direct message (never to oneself)."""
    duration = online_for(person, now)
    detail = person_detail(person, duration)
    name = f"{person.name} (you)" if me else person.name
    on_click = None if me else on_click
    span = ft.TextSpan(f"\n{detail}", style=DETAIL_STYLE)
    tile = PersonTile(
        label=f"{name} online, {detail}",
        container=True,
        button=on_click is not None or None,
        on_tap=on_click,
        tooltip=f"Message {person.name} directly" if on_click else None,
        content=ft.Container(
            on_click=on_click,
            border_radius=5,
            # the avatar's initials are its own text and the detail line is a span of the
            # name's Text: 4 controls per person instead of 7, in every tab (issue 12)
            content=ft.Row(
                [
                    ft.CircleAvatar(
                        content=initials(person.name),
                        color=ft.Colors.WHITE,
                        bgcolor=avatar_color(person.name),
                        radius=14,
                    ),
                    ft.Text(name, weight=ft.FontWeight.W_500, size=13, spans=[span]),
                ],
                spacing=8,
            ),
        ),
    )
    tile._person, tile._shown_name, tile._online_for, tile._detail = person, name, duration, span
    return tile


def online_for(person: Online, now: float | None = None) -> str:
    """How long someone has been online, as the tile says it."""
    minutes = int(((now or time.time()) - person.since) // 60)
    return "just now" if minutes < 1 else f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"


def people_shown(online: list[Online], me: str | None, query: str = "",
                 cap: int = PEOPLE_SHOWN) -> tuple[list[tuple[Online, bool]], int]:
    """The tiles to show as ``(person, is it me)`` keys, in the roster's order: the people whose
    name holds ``query`` (any case), at most ``cap``, one's own among them whenever it matches;
    and how many more match but are not shown."""
    needle = query.strip().casefold()
    keys = [(p, p.local and me is not None and p.name == me) for p in online
            if not needle or needle in p.name.casefold()]
    if len(keys) <= cap:
        return keys, 0
    room_for_others = cap - min(cap, sum(1 for _, mine in keys if mine))
    shown: list[tuple[Online, bool]] = []
    for key in keys:
        if key[1] and len(shown) < cap:
            shown.append(key)
        elif not key[1] and room_for_others > 0:
            shown.append(key)
            room_for_others -= 1
    return shown, len(keys) - len(shown)


def more_line(hidden: int, query: str, shown: int) -> str:
    """What the line under a capped or filtered list says ("" when it says nothing)."""
    if query.strip() and not shown:
        return f"Nobody online has \"{query.strip()}\" in their name."
    if not hidden:
        return ""
    if query.strip():
        return f"and {hidden} more: type more of the name"
    return f"and {hidden} more: find them by name above"


def devices_summary(online: int, devices: list[Online]) -> str:
    """The line under "Online (N)", in words a person uses (never "no devices" under 2 online)."""
    count = len(devices)
    if count == 0:
        return ("Everyone is on this host: no other Flet Chat devices on your network yet."
                if online > 1 else
                "Nobody else yet. Others join by opening this page, or Flet Chat on your network.")
    names = ", ".join(f"{d.name} ({d.device})" for d in devices)
    return f"{count} other device{'s' if count != 1 else ''} on your network: {names}"


def device_label(device: Online) -> str:
    short = short_fingerprint(device.fingerprint)
    key = f", key {short}" if short else ""
    return f"{device.name} ({device.device}) on the LAN{key}"


def device_tile(device: Online, on_block: Callable | None = None) -> ft.Control:
    """One LAN device: name, kind, the short fingerprint (two "Alex" are told apart) and, when
    the hub can block, a block button."""
    short = short_fingerprint(device.fingerprint)
    line = f"{device.name} ({device.device})" + (f" · {short}" if short else "")
    controls: list[ft.Control] = [
        ft.Semantics(
            label=device_label(device),
            container=True,
            exclude_semantics=True,
            expand=True,
            content=ft.Text(
                line,
                size=11,
                color=ft.Colors.ON_SURFACE_VARIANT,
                tooltip=f"Key fingerprint {device.fingerprint}" if device.fingerprint else None,
            ),
        )
    ]
    if on_block is not None:
        controls.append(
            ft.IconButton(
                icon=ft.Icons.BLOCK,
                icon_size=16,
                tooltip=BLOCK_TOOLTIP,
                on_click=on_block,
                data=device.key,
            )
        )
    return DeviceTile(controls, spacing=2, vertical_alignment=ft.CrossAxisAlignment.CENTER,
                      data=device.key)


def blocked_tile(peer_id: str, name: str, on_unblock: Callable) -> ft.Control:
    who = name or peer_id
    return ft.Row(
        [
            ft.Text(who, size=11, expand=True, color=ft.Colors.ON_SURFACE_VARIANT, tooltip=peer_id),
            ft.TextButton("Unblock", on_click=on_unblock, data=peer_id),
        ],
        spacing=2,
        data=peer_id,
    )


class PeoplePanel:
    """``render`` redraws the lists; the callbacks come from the coordinator."""

    def __init__(
        self,
        fingerprint: str,
        on_open_dm: Callable[[str], Callable] | None,
        on_block: Callable[[Online], Callable] | None,
        on_unblock: Callable[[str], Callable],
        on_details: Callable | None = None,
        on_check_network: Callable | None = None,
        mark: Callable[..., None] | None = None,
    ) -> None:
        self.me: str | None = None  # the name this page joined under: "(you)", no DM to self
        self.mark = mark  # the page's coalesced update (a search typed here redraws the list)
        self.query = ""  # what "Find someone" holds
        self._online: list[Online] = []  # the roster last rendered (a search filters it)
        self.on_open_dm = on_open_dm
        self.on_block = on_block
        self.on_unblock = on_unblock
        self.people = ft.Column(spacing=8, scroll=ft.ScrollMode.AUTO, expand=True)
        # Tiles kept by what they show, in isolated chunks: a join builds the newcomer's tile
        # and updates its chunk in every tab, not everyone's tile (N tabs x N people per join
        # made opening 40 tabs take 44 s; diffing all N kept tiles still grew with N, issue 12)
        self._people_tiles = ChunkedTiles(self.people, spacing=8)
        self._device_tiles: dict[Online, ft.Control] = {}
        # the line under "Online (N)" is a span of it (one control fewer per tab, issue 12)
        self.devices_line = ft.TextSpan("", style=DETAIL_STYLE)
        self.title = ft.Text("Online", weight=ft.FontWeight.BOLD, spans=[self.devices_line])
        # The fingerprint lives in the device-details view (device_details.py) now.
        self.details_button = ft.TextButton(DETAILS_BUTTON, icon=ft.Icons.FINGERPRINT,
                                            on_click=on_details,
                                            visible=bool(fingerprint) and on_details is not None)
        self.check_button = ft.TextButton(CHECK_NETWORK, icon=ft.Icons.WIFI_FIND,
                                          on_click=on_check_network,
                                          visible=on_check_network is not None)
        self.devices = ft.Column(spacing=0, tight=True)
        self.blocked_list = ft.Column(spacing=0, tight=True)
        # its title and list are mounted on the first block: most tabs never block anyone
        # (every mounted control costs each tab's heap, issue 12)
        self.blocked_panel = ft.Column([], spacing=2, tight=True, visible=False)
        # "Find someone" and the line under the list are mounted once more people are online
        # than a tab shows (PEOPLE_SHOWN): most groups never need them
        self.find: ft.TextField | None = None
        self.more = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT)
        self.body = ft.Column(
            [self.title, self.devices, self.people, self.blocked_panel,
             # (buttons this page never shows are not mounted)
             *(b for b in (self.check_button, self.details_button) if b.visible)],
            spacing=8,
            expand=True,
        )
        self.panel = ft.Container(
            content=self.body,
            width=220,
            padding=10,
            border=ft.Border.all(1, ft.Colors.OUTLINE),
            border_radius=5,
        )

    def render(self, online: list[Online], devices: list[Online]) -> list[ft.Control]:
        """Show who is online and the LAN devices; returns the controls to update (the title,
        the chunks of tiles that changed, the device list if it did)."""
        self.title.value = f"Online ({len(online)})"
        self.devices_line.text = f"\n{devices_summary(len(online), devices)}"
        self._online = online
        changed: list[ft.Control] = [self.title, *self._render_people()]
        block = self.on_block
        kept = self._device_tiles
        tiles = {d: kept[d] if d in kept else device_tile(d, block(d) if block else None)
                 for d in devices}
        if list(tiles) != list(kept):
            self._device_tiles = tiles
            self.devices.controls = list(tiles.values())
            changed.append(self.devices)
        return changed

    def _render_people(self) -> list[ft.Control]:
        """The tiles for the roster and the search; returns what to update."""
        now = time.time()
        # a tile per person shown and "(you)"; how long online is said in place
        keys, hidden = people_shown(self._online, self.me, self.query)
        changed = self._people_tiles.show(keys, lambda key: self._tile(key, now))
        changed.extend(tile for tile in self._people_tiles.tiles()
                       if tile.show_online_for(online_for(tile.person, now)))
        if self.find is None and (hidden or self.query):
            self._mount_find()
            changed.append(self.body)
        if self.find is not None:
            line = more_line(hidden, self.query, len(keys))
            if line != self.more.value or self.more.visible != bool(line):
                self.more.value, self.more.visible = line, bool(line)
                changed.append(self.more)
        return changed

    def _mount_find(self) -> None:
        self.find = ft.TextField(hint_text=FIND_HINT, dense=True, text_size=13,
                                 prefix_icon=ft.Icons.SEARCH, on_change=self._on_find)
        at = self.body.controls.index(self.people)
        self.body.controls[at:at + 1] = [self.find, self.people, self.more]

    async def _on_find(self, e: ft.Event) -> None:
        self.query = e.control.value or ""
        changed = self._render_people()
        if self.mark is not None:
            self.mark(*changed)

    def tiles(self) -> list[ft.Control]:
        """The people's tiles shown, in order."""
        return self._people_tiles.tiles()

    def _tile(self, key: tuple, now: float) -> ft.Control:
        person, mine = key
        opener = self.on_open_dm
        return online_tile(person, now, on_click=opener(person.name) if opener else None,
                           me=mine)

    def render_blocked(self, blocked: dict[str, str]) -> ft.Control:
        self.blocked_list.controls = [
            blocked_tile(peer_id, name, self.on_unblock(peer_id))
            for peer_id, name in sorted(blocked.items(), key=lambda kv: (kv[1].casefold(), kv[0]))
        ]
        if blocked and not self.blocked_panel.controls:
            self.blocked_panel.controls = [
                ft.Text(BLOCKED_TITLE, weight=ft.FontWeight.BOLD, size=12), self.blocked_list]
        self.blocked_panel.visible = bool(blocked)
        return self.blocked_panel
