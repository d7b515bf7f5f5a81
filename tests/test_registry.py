"""The generic registry: explicit names, duplicates refused, unknown names listed."""

import pytest

from salbench.registry import Registry, UnknownNameError, create


def test_register_get_list_and_describe():
    reg: Registry = Registry("widget")

    @reg.register("b")
    class B:
        """Second widget.

        More text."""

    @reg.register("a", description="first")
    class A:
        def __init__(self, size=1):
            self.size = size

    assert reg.names() == ["a", "b"]
    assert reg.names("a*") == ["a"]
    assert reg.names(exclude=("a",)) == ["b"]
    assert reg.describe() == [("a", "first"), ("b", "Second widget.")]
    assert create(reg, "a", size=None).size == 1
    assert create(reg, "a", size=3).size == 3


def test_duplicate_name_is_an_error():
    reg: Registry = Registry("widget")
    reg.register("a")(object)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(object)


def test_unknown_name_lists_allowed():
    reg: Registry = Registry("widget")
    reg.register("alpha")(object)
    reg.register("beta")(object)
    with pytest.raises(UnknownNameError) as info:
        reg.get("gamma")
    assert str(info.value) == "unknown widget 'gamma'; allowed: alpha, beta"
