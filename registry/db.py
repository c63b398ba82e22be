"""Engines and the one session helper: a unit of work commits or rolls back as a whole.

SQLite write transactions start with ``BEGIN IMMEDIATE`` so concurrent writers
queue on the busy timeout instead of failing when a read lock cannot be
upgraded; a write that still conflicts (a version number taken by another
process, a locked file) is rolled back and retried.

A database is opened, never conjured: without ``create`` a SQLite file that does
not exist (or is empty) is refused rather than made, so a mistyped path can never
become a fresh, empty registry. An in-memory URL is refused always: it would keep
nothing. A SQLite file this user cannot write is opened read-only (reads work,
writes fail with one line).
"""

from __future__ import annotations

import json
import os
import random
import re
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from t2reg.errors import ConflictError, DatabaseError, InvalidInputError, NotFoundError, Remedy, T2RegError

T = TypeVar("T")
SQLITE_BUSY_MS = 60_000
_INIT = Remedy("make one there", ("init",))
_WRITE = "t2reg_write"
_SCHEMA_LOCK = 0x7432_7265_6721  # PostgreSQL advisory lock key for schema changes ("t2reg!")


class MissingDatabaseError(NotFoundError):
    """The database a URL names does not exist (or holds nothing): ``t2reg init`` creates a registry there."""


class Database:
    """An engine plus read and write session factories for one database URL.

    ``create`` allows a SQLite file (and its folder) to be made; without it a
    missing or empty file is a :class:`MissingDatabaseError`.
    """

    def __init__(self, url: str, *, create: bool = False) -> None:
        self.url = url
        self.engine, self.read_only = _make_engine(url, create)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def display_url(self) -> str:
        return redact(self.url)

    @property
    def identity(self) -> str:
        """The URL with no password and, for SQLite, the file's absolute path: one spelling per database."""
        return identity_url(self.url)

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

    def check_writable(self, doing: str) -> None:
        """Refuse, before anything is stored, work that writes (``doing``: e.g. "publishing writes") on a
        database this user can only read."""
        if self.read_only:
            raise DatabaseError(f"registry {self.display_url} is read-only for this user; {doing}")

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """The connection a schema change runs on: one transaction that holds the database's schema lock from its
    first statement, so processes that make or migrate one database at once take turns and each reads the
    schema only after the one before it committed (SQLite: the write lock, taken at BEGIN IMMEDIATE, with DDL
    inside the transaction because pysqlite's own transaction handling is off; PostgreSQL: an advisory lock
    held until the transaction ends). On SQLite, foreign keys are off while it runs: batch-mode migrations
    rebuild tables, and the PRAGMA is ignored inside a transaction, so it is set on the raw connection."""
    sqlite = engine.dialect.name == "sqlite"
    with translate_errors(str(engine.url)), engine.execution_options(**{_WRITE: True}).connect() as conn:
        if sqlite:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                yield conn
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


class _RetryableConflict(ConflictError):
    """A transaction lost a race with another writer and may simply be run again."""


def redact(url: str) -> str:
    """The URL with any password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return redact_text(url)


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
        text = _first_line(exc)
        if re.search(r'database ".*" does not exist', text):
            raise MissingDatabaseError(f"database {redact(url)} does not exist",
                                       remedy=Remedy("create it on the server, then make the registry there",
                                                     ("init",))) from exc
        if "readonly database" in text:
            raise DatabaseError(f"database {redact(url)} is read-only for this user; this command writes") from exc
        raise DatabaseError(f"database {redact(url)}: {text}") from exc
    except DBAPIError as exc:
        raise DatabaseError(f"database {redact(url)}: {_first_line(exc)}") from exc


def _is_lock_conflict(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "database is locked" in text or "deadlock detected" in text or "could not serialize" in text


def _first_line(exc: DBAPIError) -> str:
    text = str(exc.orig or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def identity_url(url: str) -> str:
    """``url`` without its password, a SQLite path made absolute and resolved (see :attr:`Database.identity`)."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite" and not _in_memory(parsed):
        return f"sqlite:///{Path(parsed.database).expanduser().resolve()}"
    return parsed.set(password=None).render_as_string(hide_password=False)


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        raise InvalidInputError(
            f"not a database URL: {redact_text(url)!r} (expected e.g. sqlite:///path or postgresql+psycopg://...)"
        ) from None


def redact_text(url: str) -> str:
    """A URL that may not parse, with anything between '://user:' and '@' masked."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)


def _in_memory(parsed: URL) -> bool:
    database = parsed.database or ""
    return (database in ("", ":memory:") or database.startswith("file::memory:")
            or parsed.query.get("mode") == "memory")


def _make_engine(url: str, create: bool) -> tuple[Engine, bool]:
    parsed = _parse(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed, create)
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=_connect_args(parsed), json_serializer=_strict_json,
                                   json_deserializer=_lenient_json)
        return engine, False
    except T2RegError:
        raise
    except NoSuchModuleError:
        raise InvalidInputError(f"no SQLAlchemy driver for {parsed.drivername!r} in {redact(url)}") from None
    except ModuleNotFoundError as exc:
        raise InvalidInputError(
            f"the driver for {redact(url)} is not installed ({exc.name}); for PostgreSQL: pip install 't2reg[postgres]'"
        ) from None
    except (ArgumentError, TypeError, ValueError) as exc:  # query arguments the driver does not take
        raise InvalidInputError(f"database URL {redact(url)}: {exc}") from None


def _strict_json(value: object) -> str:
    # PostgreSQL's json type has no NaN or Infinity; refusing them on SQLite too keeps the two stores alike.
    return json.dumps(value, allow_nan=False)


def _lenient_json(text: str) -> object:
    # A read must never fail on what is stored: a value nested deeper than Python's parser goes (written by
    # another tool, or by an import before imports were checked) reads as a note saying so.
    try:
        return json.loads(text)
    except RecursionError:
        return {"unreadable": "nested too deeply to read"}


def _connect_args(parsed) -> dict[str, object]:
    if parsed.get_backend_name() == "postgresql":
        return {"connect_timeout": 10}
    return {}


def _sqlite_engine(parsed: URL, create: bool) -> tuple[Engine, bool]:
    if _in_memory(parsed):
        raise InvalidInputError(
            f"{parsed.render_as_string()!r} is an in-memory database: it would keep nothing after this command; "
            "give a file (sqlite:///PATH) or a server URL"
        )
    path = Path(parsed.database).expanduser()
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"database {redact(str(parsed))}: cannot create its folder ({exc.strerror})") from None
    else:
        _require_existing_file(path)
    read_only = path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
    target = _read_only_url(parsed, path) if read_only else parsed
    engine = create_engine(target, connect_args={"timeout": SQLITE_BUSY_MS / 1000}, json_serializer=_strict_json,
                           json_deserializer=_lenient_json)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Take transaction control away from pysqlite so the "begin" hook decides.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        pragmas = ["foreign_keys=ON", f"busy_timeout={SQLITE_BUSY_MS}"]
        if not read_only:  # switching the journal mode is a write
            pragmas = ["journal_mode=WAL", *pragmas, "synchronous=NORMAL"]
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine, read_only


def _require_existing_file(path: Path) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise MissingDatabaseError(f"no registry at {path} (no such file)", remedy=_INIT) from None
    except OSError as exc:
        raise DatabaseError(f"database {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInputError(f"database {path} is not a regular file")
    if info.st_size == 0:
        raise MissingDatabaseError(f"{path} is an empty file, not a registry", remedy=_INIT)


def _read_only_url(parsed: URL, path: Path) -> URL:
    # A WAL database needs its -shm file, which a reader without write access cannot create.
    # With no pending -wal content the file alone is the whole database: read it as immutable.
    # Otherwise ask SQLite for a plain read-only open (it works where the -shm file exists).
    wal = path.with_name(path.name + "-wal")
    pending = wal.exists() and wal.stat().st_size > 0
    query = {"mode": "ro", "uri": "true", **({} if pending else {"immutable": "1"})}
    return parsed.set(database=f"file:{quote(str(path.resolve()))}", query=query)
