"""flet_dcfacts: the diff's remembered ``is_dataclass`` and ``fields`` answer as ``dataclasses``
does, for every Flet control and value type and for the plain values a diff meets."""

from __future__ import annotations

import dataclasses
import enum

import flet
import flet as ft
import pytest

from fletchat.ui import flet_dcfacts, flet_speedup


def _flet_dataclasses() -> list[type]:
    for name in flet._LAZY:  # Flet imports its modules on first use
        getattr(flet, name)
    seen: list[type] = []
    todo = [object]
    while todo:
        for sub in type.__subclasses__(todo.pop()):
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return [c for c in seen if str(getattr(c, "__module__", "")).startswith("flet")
            and dataclasses.is_dataclass(c)]


class Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Plain:
    x: int = 1


PLAIN_VALUES = [None, 0, 1.5, "text", b"x", [], {}, (), Colour.RED, ft.Colors.RED, object(),
                Plain, Plain(), ft.Container, ft.Padding.all(3), ft.Text("x")]


def test_is_dataclass_answers_as_dataclasses_for_plain_values_and_classes() -> None:
    for v in PLAIN_VALUES * 2:  # the second round answers from the memo
        assert flet_dcfacts.is_dataclass(v) is dataclasses.is_dataclass(v), v


def test_fields_answer_as_dataclasses_for_every_flet_dataclass() -> None:
    classes = _flet_dataclasses()
    assert len(classes) > 200, "Flet's controls and value types were not found"
    checked = 0
    for cls in classes:
        try:
            obj = cls()
        except Exception:  # noqa: BLE001 - required arguments: the class itself is still checked
            obj = None
        assert flet_dcfacts.fields(cls) == dataclasses.fields(cls)
        assert flet_dcfacts.is_dataclass(cls) is True
        if obj is not None:
            for _ in range(2):
                assert flet_dcfacts.fields(obj) == dataclasses.fields(obj), cls
                assert flet_dcfacts.is_dataclass(obj) is True
            checked += 1
    assert checked > 150


def test_fields_of_a_non_dataclass_raises_as_dataclasses_does() -> None:
    for v in ("text", 3, object()):
        with pytest.raises(TypeError):
            dataclasses.fields(v)
        with pytest.raises(TypeError):
            flet_dcfacts.fields(v)


def test_only_the_diff_module_sees_the_facade_and_uninstall_restores() -> None:
    from flet.controls import object_patch

    was = flet_speedup.installed()
    flet_speedup.install()
    try:
        assert flet_dcfacts.installed()
        assert object_patch.dataclasses.is_dataclass is flet_dcfacts.is_dataclass
        assert object_patch.dataclasses.replace is dataclasses.replace  # the rest passes through
        assert dataclasses.is_dataclass is not flet_dcfacts.is_dataclass  # nobody else's changed
        flet_speedup.uninstall()
        assert object_patch.dataclasses is dataclasses
    finally:
        if was:
            flet_speedup.install()
