"""flet_init: every Flet control built by the fast ``__init__`` holds what Flet's own holds."""

from __future__ import annotations

import dataclasses
import datetime
import inspect
from typing import Any

import flet
import pytest

from fletchat.ui import flet_init


def _all_control_classes() -> list[type]:
    from flet.controls.base_control import BaseControl

    for name in flet._LAZY:  # Flet imports its modules on first use
        getattr(flet, name)
    return [c for c in flet_init._control_classes() if issubclass(c, BaseControl)]


def _comparable(v: Any) -> Any:
    """A value as compared: objects with no equality of their own (a lock) by their type."""
    if isinstance(v, dict):
        return {k: _comparable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_comparable(x) for x in v]
    if isinstance(v, (datetime.date, datetime.time)):  # a default of "now"
        return type(v).__name__
    if inspect.ismethod(v):  # bound to the instance itself
        return ("method", v.__func__)
    if type(v).__eq__ is object.__eq__:
        return type(v).__name__
    return v


def _state(obj: Any) -> dict[str, Any]:
    """What an instance holds, without its id (a counter) and random uid (a service's)."""
    state = {k: _comparable(v) for k, v in vars(obj).items() if k != "_i"}
    if isinstance(state.get("_internals"), dict) and "uid" in state["_internals"]:
        state["_internals"]["uid"] = len(state["_internals"]["uid"])
    return state


def _build(cls: type, init: Any, kwargs: dict[str, Any]) -> tuple[str, Any]:
    obj = cls.__new__(cls)
    try:
        init(obj, **kwargs)
    except Exception as err:  # noqa: BLE001 - both ways must fail alike
        return "error", type(err).__name__
    return "ok", _state(obj)


def _samples(default: Any) -> list[Any]:
    """Arguments to try for a parameter: its default passed explicitly, an equal copy, and a
    value that differs."""
    if isinstance(default, bool):
        return [default, not default]
    if isinstance(default, (int, float)):
        return [default, type(default)(default), default + 1]
    if isinstance(default, str):
        return [default, "".join(default), default + "x"]
    if default is None:
        return [None, "x", 3]
    return [default]


@pytest.fixture(scope="module")
def classes() -> list[tuple[type, Any, Any, list[inspect.Parameter]]]:
    """(class, Flet's __init__, the fast one, its parameters) for every generated __init__."""
    out = []
    for cls in _all_control_classes():
        init = flet_init._ORIGINAL.get(cls) or flet_init._generated(cls)
        if init is not None:
            params = list(inspect.signature(init).parameters.values())[1:]
            out.append((cls, init, flet_init.fast_init(cls, init), params))
    return out


def test_every_control_is_built_the_same_with_its_defaults_and_each_argument(classes) -> None:
    compared = arguments = 0
    for cls, init, fast, params in classes:
        if any(p.default is p.empty for p in params):
            continue  # a required argument: covered by the calls below with it given
        assert _build(cls, fast, {}) == _build(cls, init, {}), cls
        compared += 1
        for p in params:
            if p.name.startswith("_"):
                continue
            for value in _samples(p.default):
                assert _build(cls, fast, {p.name: value}) == _build(cls, init, {p.name: value}), \
                    (cls, p.name, value)
                arguments += 1
    assert compared > 100 and arguments > 5000, (compared, arguments)


def test_controls_with_required_arguments_and_overridden_defaults(classes) -> None:
    required = overridden = 0
    for cls, init, fast, params in classes:
        need = {p.name: "x" for p in params if p.default is p.empty}
        if need:
            assert _build(cls, fast, need) == _build(cls, init, need), cls
            required += 1
        if getattr(cls, "_override_props", None):
            overridden += 1
            assert _build(cls, fast, need) == _build(cls, init, need), cls
    assert required > 0 and overridden > 0, (required, overridden)


def test_install_covers_classes_made_later_and_uninstall_restores() -> None:
    from fletchat.ui import flet_speedup

    was = flet_speedup.installed()
    flet_speedup.install()
    try:
        assert flet.Text.__init__ is not flet_init._ORIGINAL.get(flet.Text) and flet_init.installed_on(
            flet.Text)

        @flet.control("Container")
        class Later(flet.Container):  # made after install(), as Flet's lazy modules are
            level: int = 3

        assert flet_init.installed_on(Later)
        made = Later(level=4, padding=2)
        assert (made.level, made.padding, made._dirty) == (4, 2, {})
        original = flet_init._ORIGINAL[Later]
        assert _build(Later, Later.__init__, {"level": 5}) == _build(Later, original, {"level": 5})
    finally:
        flet_speedup.uninstall()
    assert not flet_init.installed_on(flet.Text) and not flet_init._ORIGINAL
    if was:
        flet_speedup.install()


def test_a_row_of_the_app_is_cheaper_to_build() -> None:
    """Not a timing: the fast __init__ makes no ``Prop.__set__`` call for a default."""
    from flet.controls import value_types

    from fletchat.ui import flet_speedup

    was = flet_speedup.installed()
    calls = 0
    original = value_types.Prop.__set__

    def counting(self, obj, value):
        nonlocal calls
        calls += 1
        return original(self, obj, value)

    value_types.Prop.__set__ = counting  # type: ignore[method-assign]
    try:
        flet_init.uninstall()
        flet.Text("hello", size=12)
        stock = calls
        calls = 0
        flet_init.install()
        flet.Text("hello", size=12)
        assert calls == 2 and stock > 40, (calls, stock)
    finally:
        value_types.Prop.__set__ = original  # type: ignore[method-assign]
        flet_init.uninstall()
        flet_speedup.uninstall()
        if was:
            flet_speedup.install()


def test_dataclass_fields_of_a_fast_init_are_the_same() -> None:
    """The signature callers see (and IDEs and ``inspect``) is Flet's."""
    init = flet_init._ORIGINAL.get(flet.Column) or flet_init._generated(flet.Column)
    fast = flet_init.fast_init(flet.Column, init)
    assert inspect.signature(fast) == inspect.signature(init)
    assert [f.name for f in dataclasses.fields(flet.Column)]  # still a dataclass
