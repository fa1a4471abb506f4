"""Emoji: the reaction set, the composer's picker set and ``:shortcode:`` replacement.

A small built-in table, not a dependency: reactions must be a bounded set every peer agrees on
(a reaction outside it is refused at the edge), and shortcodes only need the common ones.
"""

from __future__ import annotations

import re

# The quick reactions under a message (one tap each), in display order.
QUICK_REACTIONS = ("\U0001f44d", "\u2764\ufe0f", "\U0001f602", "\U0001f62e", "\U0001f622",
                   "\U0001f389")

# Shortcode -> emoji. Names follow the common GitHub/Slack spelling.
SHORTCODES: dict[str, str] = {
    "+1": "\U0001f44d", "thumbsup": "\U0001f44d", "-1": "\U0001f44e", "thumbsdown": "\U0001f44e",
    "heart": "\u2764\ufe0f", "joy": "\U0001f602", "laughing": "\U0001f606", "smile": "\U0001f604",
    "slightly_smiling_face": "\U0001f642", "wink": "\U0001f609", "open_mouth": "\U0001f62e",
    "cry": "\U0001f622", "sob": "\U0001f62d", "tada": "\U0001f389", "fire": "\U0001f525",
    "rocket": "\U0001f680", "eyes": "\U0001f440", "thinking": "\U0001f914", "clap": "\U0001f44f",
    "pray": "\U0001f64f", "ok_hand": "\U0001f44c", "wave": "\U0001f44b", "100": "\U0001f4af",
    "white_check_mark": "\u2705", "x": "\u274c", "warning": "\u26a0\ufe0f", "star": "\u2b50",
    "sunglasses": "\U0001f60e", "rofl": "\U0001f923", "grin": "\U0001f601", "sweat_smile": "\U0001f605",
    "confused": "\U0001f615", "angry": "\U0001f620", "muscle": "\U0001f4aa", "coffee": "\u2615",
    "pizza": "\U0001f355", "beer": "\U0001f37a", "bug": "\U0001f41b", "zap": "\u26a1",
    "sparkles": "\u2728", "point_up": "\u261d\ufe0f", "raised_hands": "\U0001f64c",
    "heart_eyes": "\U0001f60d", "scream": "\U0001f631", "sleeping": "\U0001f634",
    "shrug": "\U0001f937", "facepalm": "\U0001f926", "see_no_evil": "\U0001f648",
    "question": "\u2753", "exclamation": "\u2757", "bulb": "\U0001f4a1", "lock": "\U0001f512",
}

# The composer's picker, and the full set a reaction may be: the quick ones first, then the
# table's values in table order, each once.
PICKER: tuple[str, ...] = tuple(dict.fromkeys((*QUICK_REACTIONS, *SHORTCODES.values())))
REACTION_SET: frozenset[str] = frozenset(PICKER)

_SHORTCODE_RE = re.compile(r":([a-z0-9_+\-]{1,32}):")


def replace_shortcodes(text: str) -> str:
    """``:tada:`` -> the emoji; unknown codes (and anything inside backticks) stay as typed."""
    parts = re.split(r"(`+[^`]*`+)", text)  # odd indexes are code spans: left alone
    for i in range(0, len(parts), 2):
        parts[i] = _SHORTCODE_RE.sub(lambda m: SHORTCODES.get(m.group(1), m.group(0)), parts[i])
    return "".join(parts)


def shortcode_candidates(prefix: str, limit: int = 8) -> list[tuple[str, str]]:
    """Autocomplete for a ``:pre`` being typed: (shortcode, emoji) pairs whose name starts with it."""
    pre = prefix.lstrip(":").lower()
    if not pre:
        return []
    return [(f":{k}:", v) for k, v in SHORTCODES.items() if k.startswith(pre)][:limit]
