"""Engines and the one session helper: a unit of work commits or rolls back as a whole.

SQLite write transactions start with ``BEGIN IMMEDIATE`` so concurrent writers
queue on the busy timeout instead of failing when a read lock cannot be
upgraded; a write that still conflicts (a version number taken by another
process, a locked file) is rolled back and retried.
"""

from __future__ import annotations

import json
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from t2reg.errors import ConflictError, DatabaseError, InvalidInputError, T2RegError

T = TypeVar("T")
SQLITE_BUSY_MS = 60_000
_WRITE = "t2reg_write"


class Database:
    """An engine plus read and write session factories for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def display_url(self) -> str:
        return redact(self.url)

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        maker = self._write if write else self._read
        with translate_errors(self.url), maker() as session, session.begin():
            yield session

    def write(self, work: Callable[[Session], T], attempts: int = 30) -> T:
        """Run ``work`` in a write transaction, retrying on conflicts between writers."""
        for attempt in range(attempts):
            try:
                with self.session(write=True) as session:
                    return work(session)
            except _RetryableConflict:
                if attempt == attempts - 1:
                    raise DatabaseError(f"gave up after {attempts} conflicting writes to {self.display_url}") from None
                time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


class _RetryableConflict(ConflictError):
    """A transaction lost a race with another writer and may simply be run again."""


def redact(url: str) -> str:
    """The URL with any password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn driver-level failures into one-line t2reg errors."""
    try:
        yield
    except T2RegError:
        raise
    except IntegrityError as exc:
        raise _RetryableConflict(f"conflicting write to {redact(url)}: {_first_line(exc)}") from exc
    except OperationalError as exc:
        if _is_lock_conflict(exc):
            raise _RetryableConflict(f"database {redact(url)} is busy: {_first_line(exc)}") from exc
        raise DatabaseError(f"database {redact(url)}: {_first_line(exc)}") from exc
    except DBAPIError as exc:
        raise DatabaseError(f"database {redact(url)}: {_first_line(exc)}") from exc


def _is_lock_conflict(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "database is locked" in text or "deadlock detected" in text or "could not serialize" in text


def _first_line(exc: DBAPIError) -> str:
    text = str(exc.orig or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInputError(f"not a database URL: {url!r} (expected e.g. sqlite:///path or postgresql+psycopg://...)") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        return create_engine(parsed, pool_pre_ping=True, connect_args=_connect_args(parsed), json_serializer=_strict_json)
    except NoSuchModuleError:
        raise InvalidInputError(f"no SQLAlchemy driver for {parsed.drivername!r} in {redact(url)}") from None
    except ModuleNotFoundError as exc:
        raise InvalidInputError(
            f"the driver for {redact(url)} is not installed ({exc.name}); for PostgreSQL: pip install 't2reg[postgres]'"
        ) from None


def _strict_json(value: object) -> str:
    # PostgreSQL's json type has no NaN or Infinity; refusing them on SQLite too keeps the two stores alike.
    return json.dumps(value, allow_nan=False)


def _connect_args(parsed) -> dict[str, object]:
    if parsed.get_backend_name() == "postgresql":
        return {"connect_timeout": 10}
    return {}


def _sqlite_engine(parsed) -> Engine:
    if parsed.database and parsed.database != ":memory:":
        try:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"database {redact(str(parsed))}: cannot create its folder ({exc.strerror})") from None
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_MS / 1000}, json_serializer=_strict_json)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Take transaction control away from pysqlite so the "begin" hook decides.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", f"busy_timeout={SQLITE_BUSY_MS}", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine
