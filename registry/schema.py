"""Schema revisions through alembic: upgrade, downgrade, and the check every open runs."""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from t2reg.errors import DatabaseError, InvalidInputError, Remedy
from t2reg.registry.db import Database, translate_errors

VERSION_TABLE = "t2reg_alembic_version"


def _migrations_dir() -> Path:
    import t2reg.migrations

    return Path(t2reg.migrations.__file__).resolve().parent


def _script_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    return cfg


def alembic_config(db: Database) -> Config:
    """An alembic config that runs against ``db``'s engine."""
    cfg = _script_config()
    cfg.attributes["engine"] = db.engine
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    heads = ScriptDirectory.from_config(_script_config()).get_heads()
    if len(heads) != 1:
        raise DatabaseError(f"migrations have {len(heads)} heads; expected exactly one")
    return heads[0]


def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with translate_errors(db.url), db.engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    _check_known(db)
    with translate_errors(db.url), _revision_errors():
        command.upgrade(alembic_config(db), revision)


def downgrade(db: Database, revision: str) -> None:
    _check_known(db)
    with translate_errors(db.url), _revision_errors():
        command.downgrade(alembic_config(db), revision)


def _check_known(db: Database) -> None:
    current = current_revision(db)
    if current is None and not is_empty(db):
        raise _foreign(db)
    if current is not None and not is_known(current):
        raise DatabaseError(
            f"database {db.display_url} is at schema revision {current}, newer than this t2reg knows "
            f"({head_revision()}); upgrade t2reg, not the database"
        )


@contextmanager
def _revision_errors() -> Iterator[None]:
    # alembic's answer to a revision it does not know, e.g. `t2reg db downgrade 9999`
    from alembic.util.exc import CommandError

    try:
        yield
    except CommandError as exc:
        raise InvalidInputError(f"{{revision}}: {exc}", options=["revision"]) from None


def is_empty(db: Database) -> bool:
    """Whether the database holds no table (but, perhaps, t2reg's version table, left by a downgrade to base)."""
    with translate_errors(db.url), db.engine.connect() as conn:
        return not set(inspect(conn).get_table_names()) - {VERSION_TABLE}


def _foreign(db: Database) -> InvalidInputError:
    # Another application's database: t2reg neither reads it as a registry nor adds its tables beside theirs.
    return InvalidInputError(f"database {db.display_url} holds tables but no t2reg schema revision: it is not a "
                             "t2reg registry; refusing to touch it (a registry needs a database of its own)")


def check_schema(db: Database) -> str:
    """Return ``"ok"``, ``"empty"``; raise when the database is at another revision."""
    current = current_revision(db)
    if current == head_revision():
        return "ok"
    if current is None:
        if is_empty(db):
            return "empty"
        raise _foreign(db)
    if not is_known(current):
        raise DatabaseError(
            f"database {db.display_url} is at schema revision {current}, which this t2reg does not know (it knows up "
            f"to {head_revision()}): a newer t2reg wrote it; upgrade t2reg to use it"
        )
    raise DatabaseError(f"database {db.display_url} is at schema revision {current}, this t2reg needs "
                        f"{head_revision()}", remedy=Remedy("upgrade its schema", ("db", "upgrade")))


def is_known(revision: str) -> bool:
    """Whether ``revision`` is one of this t2reg's migrations."""
    from alembic.util.exc import CommandError

    try:
        return ScriptDirectory.from_config(_script_config()).get_revision(revision) is not None
    except CommandError:
        return False
