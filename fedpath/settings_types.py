"""Settings checked against their annotated types at the boundary, before any constructor runs.

A Hydra override arrives as whatever YAML makes of it: ``model.lr=fast`` is the string "fast",
``rounds=2.5`` a float. Without a check the first comparison inside a constructor fails with a
``TypeError`` traceback far from the user's typo; with it the user reads one line naming the key,
the type it needs and the value given. Only plain types are judged (int, float, bool, str, None,
``Literal`` and unions of them); a richer annotation (a mapping, a protocol) is left to the
constructor's own checks.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

from fedpath.errors import ConfigError

_PLAIN = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def annotated_types(cls: type) -> dict[str, Any]:
    """A dataclass's fields' annotations, or the parameters' annotations of ``cls``'s
    ``__init__`` along its bases (a subclass's own annotation wins)."""
    if dataclasses.is_dataclass(cls):
        try:
            return typing.get_type_hints(cls)
        except (NameError, TypeError):
            return {}
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is not None and init is not object.__init__:
            try:
                hints.update(typing.get_type_hints(init))
            except (NameError, TypeError):  # an annotation that cannot be resolved is not judged
                continue
    return hints


def check_types(values: Mapping[str, Any], hints: Mapping[str, Any], group: str) -> None:
    """``ConfigError("<group>.<key> must be <type>, got <value>")`` for the first value whose
    plain annotation it does not fit."""
    for key, value in values.items():
        rule = _rule(hints.get(key))
        if rule is not None and not _fits(value, hints[key]):
            raise ConfigError(f"{group}.{key} must be {rule}, got {value!r}")


def _fits(value: Any, annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_fits(value, arm) for arm in get_args(annotation))
    if origin is Literal:
        return value in get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return True  # not a plain type: the constructor judges it


def _rule(annotation: Any) -> str | None:
    """How the annotation reads in a message, or None when it is not judged here."""
    if annotation is None:
        return None
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        arms = [_rule(arm) for arm in get_args(annotation)]
        return None if None in arms else " or ".join(dict.fromkeys(arms))  # type: ignore[arg-type]
    if origin is Literal:
        return "one of " + ", ".join(map(repr, get_args(annotation)))
    if annotation is type(None):
        return "null"
    return _PLAIN.get(annotation)
