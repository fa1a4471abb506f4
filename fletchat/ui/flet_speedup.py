"""A version-checked speed-up of one Flet 1.0.5 internal: configuring newly added controls.

Every ``page.update()`` that adds controls (a new message row in every tab) ends in Flet's
``DiffBuilder._configure_dataclass``, which walks *every declared field* of every new control
(50-70 per control) through ``getattr`` (a ``Prop`` descriptor), ``dataclasses.fields``,
``is_dataclass`` and a recursive generator call, although almost all of them hold their default
(``None``, a number, a string) and there is nothing to configure in them. That walk was the
largest part of host-mode fan-out (about half of the CPU per tab per message).

``install()`` swaps in an equivalent walk that does the same things in the same order, with the
per-class facts computed once per class instead of once per instance:

- the non-skip fields of a class, in declaration order (``dataclasses.fields`` per instance);
- which of them are ``Prop`` descriptors whose default is a plain scalar: those are read from the
  control's sparse ``_values`` dict, and skipped when absent (the default has nothing in it);
- whether a value's type can hold anything to configure (a dataclass, a dict, a list): scalars
  and enums are not recursed into.

And one memory saving: Flet's ``validate`` (run on every control at every update) attached an
empty set to *every* control up front, to remember which validation errors it already
reported; ``install()`` swaps in the same function that makes that set only when a control
first fails validation (about 250 B per control: 8 per message row, about 100 per empty page).

``install()`` also installs ``flet_init`` (controls constructed without the no-op assignments of
their 50-70 defaults, about 3x faster), ``flet_encode`` (patches packed with per-class facts
read once) and ``flet_dcfacts`` (the diff's ``is_dataclass`` and ``fields`` answered per type).

Controls are still built (``build``), checked (``before_update``), parented and marked clean one
by one, depth first, in field order; ``tests/test_flet_speedup.py`` compares the patches, the
added controls and the state they leave against Flet's own walk. It installs only on the Flet
version and source it was written against (``FLET_VERSION``, ``ORIGINAL_SHA256``) and raises
``FletChanged`` otherwise, so an upgrade of Flet fails loudly (the app then runs Flet's own walk)
instead of silently diverging.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import logging
import weakref
from collections.abc import Iterator
from enum import Enum
from typing import Any

from . import flet_dcfacts, flet_encode, flet_init

FLET_VERSION = "1.0.5"
# sha256 of ``inspect.getsource(DiffBuilder._configure_dataclass)`` in Flet 1.0.5
ORIGINAL_SHA256 = "fbbb21ab0ef5bcaa78b15d04710e34bc0c2fdfd9b9f310915cca91f7f516ca37"
# sha256 of ``inspect.getsource(flet.utils.validation.validate)`` in Flet 1.0.5
VALIDATE_SHA256 = "f2efd71017cff2db6556a7a7b2a98b72c8cd48b7daf5674d9105dec2c0b151da"

_INERT_DEFAULT_TYPES = (type(None), bool, int, float, str)


class FletChanged(RuntimeError):
    """The installed Flet is not the one this speed-up was checked against."""


_original: Any = None  # Flet's own DiffBuilder._configure_dataclass, once install() saw it
_DEBUG = logging.DEBUG


def _flet_parts() -> tuple[Any, Any, Any, Any, Any]:
    import flet
    from flet.controls import object_patch
    from flet.controls.value_types import _UNSET, Prop, _get_raw_descriptor

    return flet, object_patch, _UNSET, Prop, _get_raw_descriptor


def source_digest() -> str:
    """sha256 of the installed Flet's ``DiffBuilder._configure_dataclass`` source."""
    _, object_patch, *_ = _flet_parts()
    func = _original or object_patch.DiffBuilder._configure_dataclass
    return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()


def check() -> None:
    """Raise ``FletChanged`` unless the installed Flet is the version and source checked here."""
    flet, *_ = _flet_parts()
    version = getattr(flet, "__version__", "?")
    if version != FLET_VERSION:
        raise FletChanged(f"flet {version} installed, the speed-up was checked on {FLET_VERSION}")
    digest = source_digest()
    if digest != ORIGINAL_SHA256:
        raise FletChanged(f"flet's DiffBuilder._configure_dataclass changed (sha256 {digest})")
    from flet.utils import validation

    digest = hashlib.sha256(inspect.getsource(validation.validate).encode()).hexdigest()
    if digest != VALIDATE_SHA256:
        raise FletChanged(f"flet's validate changed (sha256 {digest})")
    digest = flet_encode.source_digest()
    if digest != flet_encode.CONFIGURE_SHA256:
        raise FletChanged(f"flet's configure_encode_object_for_msgpack changed (sha256 {digest})")


# per class: tuple of (field name, Prop default or _SLOW) in declaration order, non-skip only
_SPECS: dict[type, tuple[tuple[str, Any], ...]] = {}
# per class: (position of each fast field by name, the (position, name) of the slow fields)
_PLANS: dict[type, tuple[dict[str, int], tuple[tuple[int, str], ...]]] = {}
# per type of a field's value: True when nothing under such a value can need configuring
_INERT: dict[type, bool] = {}
_SLOW = object()


def _spec(cls: type) -> tuple[tuple[str, Any], ...]:
    _, _, unset, prop_cls, raw = _flet_parts()
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("skip", False):
            continue
        d = raw(cls, f.name)
        fast = (isinstance(d, prop_cls) and d.name == f.name and d.default is not unset
                and (type(d.default) in _INERT_DEFAULT_TYPES or isinstance(d.default, Enum)))
        out.append((f.name, d.default if fast else _SLOW))
    spec = tuple(out)
    _SPECS[cls] = spec
    return spec


def _plan(cls: type) -> tuple[dict[str, int], tuple[tuple[int, str], ...]]:
    """A fast field (a ``Prop`` with an inert default) can hold something to configure only
    when the control's sparse ``_values`` has it: the walk visits those and the slow fields,
    in declaration order, instead of all 50-70 fields."""
    spec = _SPECS.get(cls) or _spec(cls)
    fast = {name: i for i, (name, d) in enumerate(spec) if d is not _SLOW}
    slow = tuple((i, name) for i, (name, d) in enumerate(spec) if d is _SLOW)
    plan = (fast, slow)
    _PLANS[cls] = plan
    return plan


def _inert(t: type) -> bool:
    """Values of type ``t`` (not classes themselves) are neither dataclasses, dicts nor lists:
    exactly the values ``_configure_dataclass`` does nothing with."""
    r = _INERT.get(t)
    if r is None:
        r = not (issubclass(t, type) or hasattr(t, "__dataclass_fields__")
                 or issubclass(t, (dict, list)))
        _INERT[t] = r
    return r


class _Walk:
    """Flet 1.0.5's ``_configure_dataclass``, step for step, collecting what it yields."""

    def __init__(self, builder: Any) -> None:
        from flet.controls import object_patch

        self.builder = builder
        self.control_cls = builder.control_cls
        self.out: list[Any] = []
        self.logger = object_patch.logger
        self.control_setattr = object_patch._control_setattr

    def value(self, item: Any, parent: Any, frozen: bool, setattr_only: bool = False) -> None:
        if isinstance(item, type):  # a class in a field: never in practice, Flet's own walk
            if _original is not None:
                self.out.extend(_original(self.builder, item, parent, frozen, setattr_only))
        elif dataclasses.is_dataclass(item):
            self.dataclass(item, parent, frozen, setattr_only)
        elif isinstance(item, dict):
            for v in item.values():
                self.value(v, parent, frozen)
        elif isinstance(item, list):
            for v in item:
                self.value(v, parent, frozen)

    def dataclass(self, item: Any, parent: Any, frozen: bool, setattr_only: bool) -> None:
        if self.logger.isEnabledFor(_DEBUG):
            self.logger.debug("\n_configure_dataclass: %s %s %s", item, frozen, setattr_only)
        parent, frozen = self._attach(item, parent, frozen)
        item_cls = item.__class__
        if getattr(item_cls, "__flet_control_cls__", None) is None:
            item_cls.__flet_control_cls__ = self.control_cls
        is_control = bool(self.control_cls) and isinstance(item, self.control_cls)
        if is_control:
            if not setattr_only:
                item.build()
                item._before_update_safe()
                object.__setattr__(item, "_initialized", True)
            self.out.append(item)
        if not setattr_only:
            self._fields(item, item if is_control else parent, frozen)
        if not frozen:
            self._clean(item)

    @staticmethod
    def _attach(item: Any, parent: Any, frozen: bool) -> tuple[Any, bool]:
        if parent is None:
            parent_ref = getattr(item, "_parent", None)
            parent = parent_ref() if parent_ref else None
        if parent:
            if parent is item:
                from flet.controls.object_patch import ObjectPatchException

                raise ObjectPatchException(f"Parent is the same as item: {item}")
            item._parent = weakref.ref(parent)
        if hasattr(item, "_frozen"):
            frozen = item._frozen
        elif frozen:
            item._frozen = frozen
        return parent, frozen

    def _fields(self, item: Any, child_parent: Any, frozen: bool) -> None:
        """Every non-skip field that can hold anything to configure, in declaration order:
        the slow fields, and the fast ones the control's ``_values`` holds (an absent fast
        field reads as its inert default). Each is read when its turn comes, as Flet does."""
        item_cls = item.__class__
        fast, slow = _PLANS.get(item_cls) or _plan(item_cls)
        values = getattr(item, "_values", None)
        if values:
            todo = [(i, name) for name in values if (i := fast.get(name)) is not None]
            if todo:
                todo.extend(slow)
                todo.sort()
            else:
                todo = slow  # type: ignore[assignment]
        else:
            todo = slow  # type: ignore[assignment]
        for i, name in todo:
            if name in fast:
                v = item._values.get(name)
                if v is None:
                    continue
            else:
                v = getattr(item, name)
            t = type(v)
            if not (_INERT.get(t) or _inert(t)):
                self.value(v, child_parent, frozen)

    def _clean(self, item: Any) -> None:
        dst_dirty = getattr(item, "_dirty", None)
        if dst_dirty is not None:
            dst_dirty.clear()
        else:
            item_cls = type(item)
            if item_cls.__setattr__ is not self.control_setattr:
                item_cls.__setattr__ = self.control_setattr
            object.__setattr__(item, "__changes", {})


def _configure_dataclass(self: Any, item: Any, parent: Any, frozen: bool,
                         configure_setattr_only: bool = False) -> Iterator[Any]:
    walk = _Walk(self)
    walk.value(item, parent, frozen, configure_setattr_only)
    yield from walk.out


def validate(instance: Any, *, suppress_repeated_errors: bool = False) -> None:
    """Flet 1.0.5's ``validate``, with its per-control set of reported errors made on the first
    failure instead of before every check."""
    from flet.utils import validation

    spec = validation._compile_class_spec(instance.__class__)
    try:
        for field_name, rule in spec.field_rules:
            rule.validate(instance, field_name, getattr(instance, field_name))
        for rule in spec.class_rules:
            rule.validate(instance)
    except ValueError as ex:
        reported = (validation._get_reported_validation_errors(instance)
                    if suppress_repeated_errors else None)
        if reported is None:
            raise
        signature = (ex.__class__.__name__, str(ex))
        if signature in reported:
            return
        reported.add(signature)
        raise
    else:
        if suppress_repeated_errors:
            reported = getattr(instance, validation._REPORTED_VALIDATION_ERRORS_KEY, None)
            if reported:
                reported.clear()


def installed() -> bool:
    _, object_patch, *_ = _flet_parts()
    return object_patch.DiffBuilder._configure_dataclass is _configure_dataclass


def install() -> None:
    """Use the cached walk (idempotent); ``FletChanged`` if Flet is not the checked one."""
    global _original
    _, object_patch, *_ = _flet_parts()
    if installed():
        return
    _original = object_patch.DiffBuilder._configure_dataclass
    check()
    from flet.controls import base_control

    object_patch.DiffBuilder._configure_dataclass = _configure_dataclass
    base_control.validate = validate
    flet_init.install()
    flet_encode.install()
    flet_dcfacts.install()


def uninstall() -> None:
    """Back to Flet's own walk (the benchmark's baseline runs stock Flet)."""
    _, object_patch, *_ = _flet_parts()
    if installed() and _original is not None:
        from flet.controls import base_control
        from flet.utils import validation

        object_patch.DiffBuilder._configure_dataclass = _original
        base_control.validate = validation.validate
        flet_init.uninstall()
        flet_encode.uninstall()
        flet_dcfacts.uninstall()
