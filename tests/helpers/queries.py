"""Counting the SQL a piece of code sends: how tests hold a page or a walk to a fixed number of queries."""

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def statements(registry) -> Iterator[list[str]]:
    """The statements sent through ``registry``'s engine while the block runs."""
    from sqlalchemy import event

    seen: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        seen.append(statement)

    event.listen(registry.db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(registry.db.engine, "before_cursor_execute", count)
