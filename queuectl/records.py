"""`NamedTuple` for the value types of modules on the start-up path, without `typing`.

Importing `typing` costs about 5 ms here, a quarter of what one `queuectl
enqueue` process may add to a bare interpreter (see docs/DECISIONS.md), and
those modules need nothing else from it at run time: their annotations are
never evaluated (`from __future__ import annotations`), and `TYPE_CHECKING`
can be a plain constant. Type checkers see `typing.NamedTuple` itself. At run
time the same class statement builds a `collections.namedtuple` with the
annotated fields, their defaults, and the class's docstring, methods,
properties and class methods, as `typing.NamedTuple` does.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; mypy takes it as true
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    import collections

    # What a class body may not define, because namedtuple provides it (as in typing).
    _PROHIBITED = frozenset(
        {
            "__new__",
            "__init__",
            "__slots__",
            "__getnewargs__",
            "_fields",
            "_field_defaults",
            "_make",
            "_replace",
            "_asdict",
            "_source",
        }
    )
    # Set by the class statement itself, or handled below.
    _SPECIAL = frozenset({"__module__", "__qualname__", "__annotations__", "__doc__"})

    class _NamedTupleMeta(type):
        def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, object]) -> type:
            if not bases:  # NamedTuple itself, below
                return super().__new__(mcs, name, bases, namespace)
            if bases != (NamedTuple,):
                raise TypeError("a NamedTuple class can only inherit from NamedTuple")
            annotations = dict(namespace.get("__annotations__", {}))
            fields = list(annotations)
            defaults = []
            for field in fields:
                if field in namespace:
                    defaults.append(namespace[field])
                elif defaults:
                    raise TypeError(
                        f"non-default NamedTuple field {field} cannot follow default fields"
                    )
            cls = collections.namedtuple(
                name, fields, defaults=defaults, module=str(namespace["__module__"])
            )
            cls.__qualname__ = str(namespace.get("__qualname__", name))
            cls.__annotations__ = annotations
            if namespace.get("__doc__") is not None:
                cls.__doc__ = namespace["__doc__"]
            for key, value in namespace.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"cannot overwrite NamedTuple attribute {key}")
                if key not in _SPECIAL and key not in annotations:
                    setattr(cls, key, value)
            return cls

    class NamedTuple(metaclass=_NamedTupleMeta):
        """Base of the class statement only: the classes built are plain namedtuples."""
