"""`@record`: a frozen-dataclass look-alike that costs nothing to define.

`@dataclass` writes and `exec`s Python source for each generated method; on
this class of machine that is ~1.4 ms per frozen class, and `switchyard route`
imports ~45 of them: most of its 150 ms budget. `@record` builds the same
behaviour from shared closures instead: keyword or positional `__init__` with
defaults and `field(default_factory=...)`, `__post_init__`, frozen
`__setattr__`, `__eq__`, `__hash__`, `__repr__`, and real `dataclasses.Field`
objects in `__dataclass_fields__`, so `dataclasses.fields`, `asdict`,
`replace` and `is_dataclass` work unchanged. Instances are a little slower to
create than a dataclass's; use it for things built per config load or per
task, not per token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform

__all__ = ["record"]

T = TypeVar("T")
_MISSING: Any = dataclasses.MISSING
_FIELD_MARKER: Any = dataclasses._FIELD  # type: ignore[attr-defined]  # what dataclasses.fields() filters on


def _own_fields(cls: type) -> list[dataclasses.Field[Any]]:
    out = []
    # The class's own annotations only (inherited fields come from the bases' records).
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063 - avoids importing inspect
        if isinstance(annotation, str) and annotation.startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, _MISSING)
        f: dataclasses.Field[Any] = value if isinstance(value, dataclasses.Field) else dataclasses.field(default=value)
        f.name = name
        f.type = annotation
        f._field_type = _FIELD_MARKER  # type: ignore[attr-defined]
        if isinstance(value, dataclasses.Field):
            if f.default is not _MISSING:
                setattr(cls, name, f.default)
            else:
                delattr(cls, name)
        out.append(f)
    return out


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def record(cls: type[T]) -> type[T]:
    """Make `cls` a frozen record of its annotated fields (inherited fields first, like dataclasses)."""
    merged: dict[str, dataclasses.Field[Any]] = {}
    for base in reversed(cls.__mro__[1:]):
        merged.update(getattr(base, "__dataclass_fields__", {}))
    for f in _own_fields(cls):
        merged[f.name] = f
    fields = list(merged.values())
    names = tuple(f.name for f in fields)
    index = {n: i for i, n in enumerate(names)}
    defaults: list[tuple[int, Any, Callable[[], Any] | None]] = []
    for i, f in enumerate(fields):
        factory: Callable[[], Any] | None = None if f.default_factory is _MISSING else f.default_factory  # type: ignore[assignment]
        defaults.append((i, f.default, factory))
    has_post_init = hasattr(cls, "__post_init__")
    setter = object.__setattr__
    qualname = cls.__qualname__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{qualname}() takes {len(names)} positional arguments but {len(args)} were given")
        values: list[Any] = [*args, *([_MISSING] * (len(names) - len(args)))]
        for key, value in kwargs.items():
            i = index.get(key)
            if i is None:
                raise TypeError(f"{qualname}() got an unexpected keyword argument {key!r}")
            if i < len(args):
                raise TypeError(f"{qualname}() got multiple values for argument {key!r}")
            values[i] = value
        for i, default, factory in defaults:
            if values[i] is _MISSING:
                if factory is not None:
                    values[i] = factory()
                elif default is not _MISSING:
                    values[i] = default
                else:
                    raise TypeError(f"{qualname}() missing required argument: {names[i]!r}")
        for name, value in zip(names, values, strict=True):
            setter(self, name, value)
        if has_post_init:
            self.__post_init__()

    def __setattr__(self: Any, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self: Any, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def _values(self: Any) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in names)

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return _values(self) == _values(other)

    def __hash__(self: Any) -> int:
        return hash(_values(self))

    def __repr__(self: Any) -> str:
        return f"{qualname}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"

    for fn in (__init__, __setattr__, __delattr__, __eq__, __hash__, __repr__):
        fn.__qualname__ = f"{qualname}.{fn.__name__}"
        setattr(cls, fn.__name__, fn)
    cls.__dataclass_fields__ = merged  # type: ignore[attr-defined]
    cls.__match_args__ = names  # type: ignore[attr-defined,misc]
    return cls
