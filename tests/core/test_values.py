"""The shared ``__eq__``, ``__hash__`` and ``__repr__`` mean what dataclass's own would."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from robosync.values import FrozenValue, Value


@dataclass(frozen=True, eq=False, repr=False)
class Point(FrozenValue):
    x: int
    y: int
    note: str = field(default="", compare=False, repr=False)


@dataclass(eq=False, repr=False)
class Bag(Value):
    items: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Reference:  # dataclass's own methods, to compare with
    x: int
    y: int
    note: str = field(default="", compare=False, repr=False)


def test_frozen_values_compare_hash_and_show_like_a_frozen_dataclass():
    a, b = Point(1, 2, note="a"), Point(1, 2, note="b")
    assert a == b and hash(a) == hash(b)  # the uncompared field is left out of both
    assert a != Point(1, 3)
    assert len({a, b, Point(2, 1)}) == 2
    assert repr(a) == repr(Reference(1, 2, note="a")).replace("Reference", "Point")
    assert hash(a) == hash(Reference(1, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.x = 5  # type: ignore[misc]


def test_mutable_values_compare_by_class_and_fields_and_are_unhashable():
    assert Bag([1]) == Bag([1]) and Bag([1]) != Bag([2])
    # Another class with the same fields is never equal.
    assert Point(1, 2) != Reference(1, 2) and Reference(1, 2) != Point(1, 2)
    assert repr(Bag([1])) == "Bag(items=[1])"
    with pytest.raises(TypeError):
        hash(Bag())
