"""Flet 1.0.5's diff asks ``dataclasses`` the same two questions again and again: remembered.

``flet.controls.object_patch`` (the diff of every ``page.update()``, per tab, per message) calls
``dataclasses.is_dataclass`` about 70 times per tab per message row, about half of them on
strings, numbers and ``None`` (each of those raises and swallows an ``AttributeError`` inside:
about 0.4 µs), and ``dataclasses.fields`` on controls with dirty fields (a new tuple of 50-70
fields each time: about 3.4 µs).

``install()`` gives that one module a ``dataclasses`` of its own (``object_patch.dataclasses``)
whose two functions answer from a per-type memo, and which passes everything else through to
the real module. The answers are the same: a type's being a dataclass and its fields are fixed
when the class is created (``dataclasses.fields`` of an instance reads its class's
``__dataclass_fields__``); a class given as the argument is asked directly, unmemoised.
``tests/test_flet_dcfacts.py`` compares both with the real functions on every Flet control and
value type. ``flet_speedup.install`` installs it after its version check.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

_IS_DATACLASS: dict[type, bool] = {}
_FIELDS: dict[type, tuple[dataclasses.Field, ...]] = {}


def is_dataclass(obj: Any) -> bool:
    """``dataclasses.is_dataclass``, remembered per type of instance."""
    t = type(obj)
    r = _IS_DATACLASS.get(t)
    if r is None:
        if isinstance(obj, type):
            return dataclasses.is_dataclass(obj)
        r = _IS_DATACLASS[t] = dataclasses.is_dataclass(obj)
    return r


def fields(class_or_instance: Any) -> tuple[dataclasses.Field, ...]:
    """``dataclasses.fields``, remembered per type of instance (a tuple: nothing can change it)."""
    if isinstance(class_or_instance, type):
        return dataclasses.fields(class_or_instance)
    t = type(class_or_instance)
    r = _FIELDS.get(t)
    if r is None:
        r = dataclasses.fields(class_or_instance)  # raises TypeError for a non-dataclass, as before
        if "__dataclass_fields__" not in getattr(class_or_instance, "__dict__", {}):
            _FIELDS[t] = r
    return r


class _Dataclasses(ModuleType):
    """The real ``dataclasses`` for everything but the two remembered answers."""

    is_dataclass = staticmethod(is_dataclass)
    fields = staticmethod(fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(dataclasses, name)


_FACADE = _Dataclasses("dataclasses")


def installed() -> bool:
    from flet.controls import object_patch

    return object_patch.dataclasses is _FACADE


def install() -> None:
    from flet.controls import object_patch

    object_patch.dataclasses = _FACADE


def uninstall() -> None:
    from flet.controls import object_patch

    object_patch.dataclasses = dataclasses
