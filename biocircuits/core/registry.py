"""One registry shape for everything users add by name: feedback rules, Dale enforcers, error transforms,
plasticity rules, datasets and models.

    RULES = Registry("feedback rule")

    @RULES.register
    class SignSymmetry(FeedbackRule):
        name = "sign_symmetry"

``register`` refuses a name that is taken; ``get`` raises a [`ConfigError`][biocircuits.errors.ConfigError] that lists
the valid names and the closest ones ("did you mean"); ``names()`` lists them in registration order.
``view`` gives the members of one kind within a larger registry (the Dale enforcers among all Dale attachments),
under the names a spec key uses for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from biocircuits.errors import ConfigError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Named members of one kind (classes with a ``name`` attribute, or callables registered under a name)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._members: dict[str, T] = {}

    @overload
    def register(self, member: T) -> T: ...

    @overload
    def register(self, member: str) -> Callable[[T], T]: ...

    def register(self, member):
        """Decorator. ``@REG.register`` uses the class's ``name``; ``@REG.register("name")`` names a callable."""
        if isinstance(member, str):

            def deco(obj: T) -> T:
                self._add(member, obj)
                return obj

            return deco
        self._add(member.name, member)
        return member

    def _add(self, name: str, member: T) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self._members and self._members[name] is not member:
            raise ValueError(f"{self.kind} {name!r} is already registered (by {self._members[name]!r})")
        self._members[name] = member

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive sessions that redefine a member)."""
        self._members.pop(name, None)

    def get(self, name: str) -> T:
        """The member called ``name``; a ConfigError listing the valid names (and the closest) otherwise."""
        try:
            return self._members[name]
        except (KeyError, TypeError):
            raise ConfigError(
                f"unknown {self.kind}",
                expected="one of " + ", ".join(sorted(self._members)),
                given=name,
                suggestion=did_you_mean(str(name), self._members),
            ) from None

    def names(self) -> list[str]:
        return list(self._members)

    def items(self) -> list[tuple[str, T]]:
        return list(self._members.items())

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._members)})"

    def view(self, kind: str, select: Callable[[T], str | None], also: dict[str, T] | None = None) -> RegistryView[T]:
        """The members for which ``select`` gives a name, under that name (plus the fixed entries ``also``, e.g. a
        spec key's off value): a live [`RegistryView`][biocircuits.core.registry.RegistryView]."""
        return RegistryView(kind, self, select, also or {})


class RegistryView(Registry[T]):
    """A registry whose members are those of ``parent`` that ``select`` names (read live), plus ``also``.
    Registering here registers in the parent (a member ``select`` does not name is refused)."""

    def __init__(self, kind: str, parent: Registry[T], select: Callable[[T], str | None], also: dict[str, T]) -> None:
        self.kind, self.parent, self.select, self.also = kind, parent, select, dict(also)

    @property
    def _members(self) -> dict[str, T]:  # type: ignore[override]
        chosen = {key: m for m in self.parent._members.values() if (key := self.select(m)) is not None}
        return {**self.also, **chosen}

    def _add(self, name: str, member: T) -> None:
        if self.select(member) is None:
            raise ValueError(f"{member!r} is not a {self.kind}")
        self.parent._add(name, member)

    def unregister(self, name: str) -> None:
        for key, member in self.parent.items():
            if self.select(member) == name:
                self.parent.unregister(key)
