"""Tables of named things: one mechanism, and one error, for every "which X do you mean".

Tasks, optimizers, backends, job kinds and model architectures are each a
:class:`Names` table that their package fills by plain imports at load time.
A name no table holds is a :class:`~t2reg.errors.UnknownNameError` wherever it comes from
(a NotFoundError, exit code 3 in the CLI), carrying the table's kind, the name
asked for and the names it knows, so a caller can offer them itself.
"""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from t2reg.errors import UnknownNameError, shown

T = TypeVar("T")


class Names(Generic[T]):
    """The entries of one kind by name, in the order names sort.

    ``kind`` is the word a message uses ("task", "optimizer"); ``error`` the class raised for an unknown name
    (a subclass of :class:`UnknownNameError` where a kind has its own, like architectures).
    """

    def __init__(self, kind: str, error: type[UnknownNameError] = UnknownNameError) -> None:
        self.kind, self.error = kind, error
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name`` (a later entry of the same name replaces the earlier one)."""
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> T:
        """Take ``name`` out of the table (a plugin unloading, a test cleaning up after itself)."""
        entry = self.get(name)
        del self._entries[name]
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return (self._entries[name] for name in self.names())

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, entry) in the order they were added (where the first added should win a lookup by another key)."""
        return iter(list(self._entries.items()))

    def find(self, name: str) -> T | None:
        return self._entries.get(name)

    def get(self, name: str, option: str | None = None) -> T:
        """The entry called ``name``; an unknown name raises :attr:`error`, naming ``option`` when the name came
        from one (so the CLI can say ``--optimizer``)."""
        try:
            return self._entries[name]
        except KeyError:
            what = f"{{{option}}}" if option else self.kind
            raise self.error(f"unknown {what} {shown(name)}; choose from {', '.join(self.names())}",
                             options=[option] if option else [], kind=self.kind, name=name,
                             known=tuple(self.names())) from None

    def check(self, name: str, option: str | None = None) -> None:
        """Refuse an unknown ``name`` now, before any work that would need it."""
        self.get(name, option)
