"""queuectl.records.NamedTuple builds what typing.NamedTuple builds, without importing typing."""

from __future__ import annotations

import pickle
import subprocess
import sys
import typing

import pytest

from queuectl import records


class Typed(typing.NamedTuple):
    """A point."""

    x: int
    label: str = "origin"
    weight: float = 1.0

    @property
    def doubled(self) -> int:
        return self.x * 2

    def describe(self, prefix: str = "") -> str:
        return f"{prefix}{self.label}:{self.x}"

    @classmethod
    def zero(cls) -> Typed:
        return cls(0)


class Shim(records.NamedTuple):
    """A point."""

    x: int
    label: str = "origin"
    weight: float = 1.0

    @property
    def doubled(self) -> int:
        return self.x * 2

    def describe(self, prefix: str = "") -> str:
        return f"{prefix}{self.label}:{self.x}"

    @classmethod
    def zero(cls) -> Shim:
        return cls(0)


class Bare(records.NamedTuple):
    a: int


def test_the_shim_is_not_typing() -> None:
    # Where TYPE_CHECKING is a constant, the run-time class is the stand-in.
    assert records.NamedTuple is not typing.NamedTuple


def test_same_fields_defaults_and_docstring() -> None:
    assert Shim._fields == Typed._fields == ("x", "label", "weight")
    assert Shim._field_defaults == Typed._field_defaults
    assert Shim.__doc__ == Typed.__doc__ == "A point."
    # typing wraps the (postponed) annotations in ForwardRef; the names are what matter.
    assert list(Shim.__annotations__) == list(Typed.__annotations__)
    assert Shim.__module__ == Typed.__module__ == __name__
    assert Shim.__qualname__ == "Shim"
    assert Bare.__doc__ == "Bare(a,)"  # namedtuple's own, as typing gives it


def test_same_behaviour() -> None:
    shim, typed = Shim(3, weight=2.5), Typed(3, weight=2.5)
    assert tuple(shim) == tuple(typed) == (3, "origin", 2.5)
    assert shim == (3, "origin", 2.5) and hash(shim) == hash(typed)
    assert repr(shim) == repr(typed).replace("Typed", "Shim")
    assert shim.doubled == typed.doubled == 6
    assert shim.describe(">") == typed.describe(">") == ">origin:3"
    assert Shim.zero() == Typed.zero() == (0, "origin", 1.0)
    assert isinstance(Shim.zero(), Shim)
    assert shim._replace(x=4) == (4, "origin", 2.5)
    assert shim._asdict() == typed._asdict()
    assert Shim._make([1, "a", 0.5]) == Typed._make([1, "a", 0.5])
    assert pickle.loads(pickle.dumps(shim)) == shim
    with pytest.raises(AttributeError):
        shim.x = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        Shim()  # type: ignore[call-arg]


def test_rejects_what_typing_rejects() -> None:
    with pytest.raises(TypeError, match="cannot follow default"):

        class _Order(records.NamedTuple):
            a: int = 0
            b: int  # type: ignore[misc]

    with pytest.raises(AttributeError, match="_replace"):

        class _Overwrite(records.NamedTuple):
            a: int

            def _replace(self) -> None:  # type: ignore[override]
                pass


def test_start_up_modules_do_not_import_typing() -> None:
    """The point of the shim: the enqueue path's value types cost no `typing` import."""
    code = (
        "import sys; import queuectl.cli.enqueue, queuectl.store.sqlite_producer, queuectl.spec;"
        " print('typing' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"
