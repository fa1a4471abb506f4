"""Faster construction of Flet 1.0.5 controls, with the same result.

A Flet control is a dataclass whose public fields are ``Prop`` descriptors that keep only
non-default values (in ``_values``). Its generated ``__init__`` still assigns all of its 50-70
fields, and each default goes through ``Prop.__set__`` only to be dropped there: about 30 µs per
control, so about 0.3 ms per message row per open tab (a third of host mode's CPU per tab per
message).

``install()`` gives each control class whose ``__init__`` dataclasses generated a new one with
the same signature that does what the generated one does, in the same order (factories called,
fields assigned, ``__post_init__`` with the init-only arguments), except one thing: a ``Prop``
field whose argument *is* its default is not assigned. ``Prop.__set__`` drops exactly that
assignment while the control is being built (``_values`` is fresh, and a value equal to the
default is not stored). Where a class overrides a field's default but not its ``Prop`` (so the
two defaults differ), the field is assigned as before. ``tests/test_flet_init.py`` builds every
Flet control both ways and compares what they hold. ``flet_speedup.install`` calls this after
its version check.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from typing import Any

log = logging.getLogger("fletchat.ui")

_ORIGINAL: dict[type, Any] = {}  # class -> its generated __init__, while ours is installed


def _generated(cls: type) -> Any:
    """The class's own dataclass-generated ``__init__``, or None (hand-written, or wrapped as
    Flet's ``@value`` types are)."""
    init = cls.__dict__.get("__init__")
    if init is None or not dataclasses.is_dataclass(cls):
        return None
    code = getattr(init, "__code__", None)
    if code is None or code.co_name != "__init__" or not code.co_filename.startswith("<"):
        return None
    return init


def fast_init(cls: type, init: Any) -> Any:
    """The same ``__init__`` as ``init`` (generated for ``cls``), minus no-op ``Prop`` sets."""
    from flet.controls.value_types import Prop, _get_raw_descriptor

    sig = inspect.signature(init)
    params = list(sig.parameters.values())[1:]  # without self
    ns: dict[str, Any] = {}
    head: list[str] = []
    star = False
    for p in params:
        if p.kind is p.KEYWORD_ONLY and not star:
            head.append("*")
            star = True
        elif p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            raise TypeError(f"{cls.__name__}.__init__: unexpected parameter {p}")
        if p.default is p.empty:
            head.append(p.name)
        else:
            ns[f"_d_{p.name}"] = p.default
            head.append(f"{p.name}=_d_{p.name}")
    body: list[str] = []
    init_vars: list[str] = []
    for f in cls.__dataclass_fields__.values():  # type: ignore[attr-defined]
        kind = f._field_type  # type: ignore[attr-defined]
        if kind is dataclasses._FIELD_CLASSVAR:  # type: ignore[attr-defined]
            continue
        if kind is dataclasses._FIELD_INITVAR:  # type: ignore[attr-defined]
            init_vars.append(f.name)
            continue
        n = f.name
        if f.default_factory is not dataclasses.MISSING:
            ns[f"_f_{n}"] = f.default_factory
            body.append(f"self.{n} = _f_{n}() if {n} is _d_{n} else {n}" if f.init
                        else f"self.{n} = _f_{n}()")
            continue
        if not f.init:
            continue  # dataclasses assign nothing (the class attribute is the default)
        desc = _get_raw_descriptor(cls, n)
        if (f.default is not dataclasses.MISSING and isinstance(desc, Prop) and desc.name == n
                and type(desc.default) is type(f.default) and desc.default == f.default):
            body.append(f"if {n} is not _d_{n}: self.{n} = {n}")
        else:
            body.append(f"self.{n} = {n}")
    if hasattr(cls, "__post_init__"):
        body.append(f"self.__post_init__({', '.join(init_vars)})")
    src = f"def __init__(self, {', '.join(head)}):\n    " + "\n    ".join(body or ["pass"])
    # our own text from the class's fields (as dataclasses makes its __init__), not input
    exec(compile(src, f"<fletchat fast init of {cls.__qualname__}>", "exec"), ns)  # noqa: S102
    made = ns["__init__"]
    made.__qualname__ = f"{cls.__qualname__}.__init__"
    made.__signature__ = sig
    return made


def _control_classes() -> list[type]:
    from flet.controls.base_control import BaseControl

    seen: list[type] = []
    todo = [BaseControl]
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    return seen


def _speed_up(cls: type) -> None:
    init = _generated(cls)
    if init is None or cls in _ORIGINAL:
        return
    try:
        made = fast_init(cls, init)
    except (TypeError, ValueError, SyntaxError) as err:  # a shape not seen in Flet 1.0.5
        log.debug("%s keeps its own __init__: %s", cls.__qualname__, err)
        return
    cls.__init__ = made  # type: ignore[misc]
    _ORIGINAL[cls] = init


_apply_control: Any = None  # Flet's decorator body, while ours wraps it


def _apply_control_fast(*args: Any, **kwargs: Any) -> Any:
    """Flet's ``@control`` (``_apply_control``), then the fast ``__init__``: Flet imports most
    control modules on first use, after ``install()`` has run."""
    cls = _apply_control(*args, **kwargs)
    _speed_up(cls)
    return cls


def install() -> int:
    """Fast ``__init__`` for every Flet control class, loaded now or later; returns how many
    have it now."""
    global _apply_control
    from flet.controls import base_control

    for cls in _control_classes():
        _speed_up(cls)
    if _apply_control is None:
        _apply_control = base_control._apply_control
        base_control._apply_control = _apply_control_fast
    return len(_ORIGINAL)


def uninstall() -> None:
    global _apply_control
    from flet.controls import base_control

    if _apply_control is not None:
        base_control._apply_control = _apply_control
        _apply_control = None
    for cls, init in _ORIGINAL.items():
        cls.__init__ = init  # type: ignore[misc]
    _ORIGINAL.clear()


def installed_on(cls: type) -> bool:
    """Whether ``cls`` builds through a fast ``__init__`` now."""
    return cls in _ORIGINAL and cls.__dict__.get("__init__") is not _ORIGINAL[cls]
