"""A faster msgpack encoder for Flet 1.0.5's patches, with the same bytes.

Every patch a host sends to a tab is packed by ``msgpack`` with Flet's
``encode_object_for_msgpack`` as its ``default``: per control or value object (a message row
is about 13) it asks ``dataclasses.is_dataclass`` (an ``Enum`` member's answer goes through
``EnumType.__getattr__``), reads the class's facts (``_event_fields``, ``_root_defaults``, ...)
and walks the MRO for each internal field's default: about 14 µs per object, a fifth of a
tab's CPU per message.

``install()`` makes host mode's connection (``flet_web``'s ``FletApp.send_message``) pack with
an encoder that computes those per-class facts once per class and then does what Flet's does,
in the same order, for controls and ``@value`` types with sparse values and for enums; anything
else goes to Flet's own encoder. ``tests/test_flet_encode.py`` packs every Flet control, the
app's rows and their value types both ways and compares the bytes and the diff snapshots
(``__prev_*``) the encoders leave. ``flet_speedup.install`` installs it after its check, which
refuses (``FletChanged``) unless Flet's encoder is the checked source (``CONFIGURE_SHA256``).
"""

from __future__ import annotations

import hashlib
import inspect
from enum import Enum
from typing import Any

from .flet_dcfacts import is_dataclass as _is_dataclass  # remembered per type

# sha256 of ``inspect.getsource(flet.messaging.protocol.configure_encode_object_for_msgpack)``
CONFIGURE_SHA256 = "b182fdc4aafff329077e318baab193edabb8335c7a8541cc6f68cde1a6c565e0"

_ENUM = object()
_OTHER = object()


class _Facts:
    """What Flet's encoder reads from a control or value class, read once."""

    __slots__ = ("events", "overrides", "root_defaults", "structural")

    def __init__(self, cls: type) -> None:
        from flet.controls.value_types import _UNSET
        from flet.messaging.protocol import _get_root_dataclass_field

        self.events = getattr(cls, "_event_fields", frozenset())
        self.root_defaults = getattr(cls, "_root_defaults", {})
        self.overrides = tuple(getattr(cls, "_override_props", {}).items())
        fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
        structural = []
        for name in cls._structural_fields:  # type: ignore[attr-defined]
            meta = fields.get(name)
            default = meta.default if meta is not None else _UNSET
            root = _get_root_dataclass_field(cls, name)
            if root is not None:
                default = root.default
            structural.append((name, default))
        self.structural = tuple(structural)


class Encoder:
    """``default=`` for ``msgpack.packb``: Flet's encoding, per-class facts cached."""

    def __init__(self, control_cls: type, stock: Any) -> None:
        from flet.controls.value_types import _UNSET

        self.control_cls = control_cls
        self.stock = stock  # Flet's own encoder: everything not handled here
        self.unset = _UNSET
        self.plans: dict[type, Any] = {}

    def _plan(self, cls: type) -> Any:
        if not hasattr(cls, "__dataclass_fields__"):
            return _ENUM if issubclass(cls, Enum) else _OTHER
        if getattr(cls, "_structural_fields", None) is None or not (
                issubclass(cls, self.control_cls) or getattr(cls, "_is_flet_value", False)):
            return _OTHER
        return _Facts(cls)

    def __call__(self, obj: Any) -> Any:
        cls = type(obj)
        plan = self.plans.get(cls)
        if plan is None:
            plan = self.plans[cls] = self._plan(cls)
        if plan is _ENUM:
            return obj.value
        values = getattr(obj, "_values", None) if plan is not _OTHER else None
        if values is None:
            return self.stock(obj)
        return self._sparse(obj, plan, values)

    def _sparse(self, obj: Any, facts: _Facts, values: dict[str, Any]) -> dict[str, Any]:
        """Flet's fast path for ``@control`` / ``@value`` objects, step for step."""
        r: dict[str, Any] = {}
        prev: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] = ({}, {}, {})
        self._values(facts, values, r, prev)
        for fname, v in facts.overrides:
            if fname not in r and v is not None:
                r[fname] = v
        _structural(obj, facts, r, prev)
        if not hasattr(obj, "_frozen"):
            prev_lists, prev_dicts, prev_classes = prev
            setattr(obj, "__prev_lists", prev_lists)
            setattr(obj, "__prev_dicts", prev_dicts)
            setattr(obj, "__prev_classes", prev_classes)
        return r

    def _values(self, facts: _Facts, values: dict[str, Any], r: dict[str, Any],
                prev: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
        """The sparse non-default ``Prop`` values (step 1 of Flet's fast path)."""
        unset = self.unset
        prev_lists, prev_dicts, prev_classes = prev
        root_defaults = facts.root_defaults
        for fname, v in values.items():
            if v is None:
                continue
            root_def = root_defaults.get(fname, unset)
            if root_def is not unset and v == root_def:
                continue
            if _is_dataclass(v):
                r[fname] = v
                prev_classes[fname] = v
            elif isinstance(v, list):
                v = v[:]
                r[fname] = v
                prev_lists[fname] = v
            elif isinstance(v, dict):
                v = v.copy()
                r[fname] = v
                prev_dicts[fname] = v
            else:
                r[fname] = True if fname in facts.events else v


def _structural(obj: Any, facts: _Facts, r: dict[str, Any],
                prev: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
    """Lists, dicts, nested dataclasses and internal scalars (step 3 of Flet's fast path)."""
    prev_lists, prev_dicts, prev_classes = prev
    for fname, default in facts.structural:
        v = getattr(obj, fname)
        if isinstance(v, list):
            v = v[:]
            if len(v) > 0:
                r[fname] = v
            prev_lists[fname] = v
        elif isinstance(v, dict):
            v = v.copy()
            if len(v) > 0:
                r[fname] = v
            prev_dicts[fname] = v
        elif _is_dataclass(v):
            r[fname] = v
            prev_classes[fname] = v
        elif v is not None and v != default:
            r[fname] = v


_stock_configure: Any = None
_encoders: dict[type, Encoder] = {}


def source_digest() -> str:
    from flet.messaging import protocol

    func = _stock_configure or protocol.configure_encode_object_for_msgpack
    return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()


def configure(control_cls: type) -> Encoder:
    """What ``flet_web`` calls per message: one encoder per control class, kept (its plans
    outlive a message)."""
    enc = _encoders.get(control_cls)
    if enc is None:
        enc = _encoders[control_cls] = Encoder(control_cls, _stock_configure(control_cls))
    return enc


def installed() -> bool:
    from flet_web.fastapi import flet_app

    return flet_app.configure_encode_object_for_msgpack is configure


def install() -> None:
    """Only after ``flet_speedup.check`` (which compares ``source_digest`` too)."""
    global _stock_configure
    from flet.messaging import protocol
    from flet_web.fastapi import flet_app

    if installed():
        return
    _stock_configure = protocol.configure_encode_object_for_msgpack
    flet_app.configure_encode_object_for_msgpack = configure


def uninstall() -> None:
    from flet_web.fastapi import flet_app

    if installed():
        flet_app.configure_encode_object_for_msgpack = _stock_configure
