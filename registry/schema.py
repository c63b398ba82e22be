"""Schema revisions through alembic: upgrade, downgrade, and the check every open runs.

Every command opens a registry and so runs the check; when the database is at the newest revision, as it nearly
always is, the check reads alembic's version table with one query and imports no alembic (which costs a fifth of a
second of every command's start). Anything else, and every upgrade or downgrade, goes through alembic.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import inspect, text

from t2reg.errors import DatabaseError, InvalidInputError, Remedy
from t2reg.migrations import HEAD
from t2reg.registry.db import Database, translate_errors

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "t2reg_alembic_version"  # alembic's table (one column, version_num), named for t2reg


def _migrations_dir() -> Path:
    import t2reg.migrations

    return Path(t2reg.migrations.__file__).resolve().parent


def _script_config() -> Config:
    from alembic.config import Config

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
    """The newest migration, as alembic reads the migration scripts (``t2reg.migrations.HEAD`` names it too)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(_script_config()).get_heads()
    if len(heads) != 1:
        raise DatabaseError(f"migrations have {len(heads)} heads; expected exactly one")
    return heads[0]


def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None for an empty database (or one downgraded to base)."""
    with translate_errors(db.url), db.engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        revisions = list(conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
    if len(revisions) > 1:  # alembic writes one row per head; t2reg's migrations have one
        raise DatabaseError(f"database {db.display_url} is at {len(revisions)} schema revisions "
                            f"({', '.join(sorted(revisions))}); expected one")
    return revisions[0] if revisions else None


def upgrade(db: Database, revision: str = "head") -> None:
    from alembic import command

    _check_known(db)
    with translate_errors(db.url), _revision_errors():
        command.upgrade(alembic_config(db), revision)


def downgrade(db: Database, revision: str) -> None:
    from alembic import command

    _check_known(db)
    with translate_errors(db.url), _revision_errors():
        command.downgrade(alembic_config(db), revision)


def _check_known(db: Database) -> None:
    current = _registry_revision(db)
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


def _registry_revision(db: Database) -> str | None:
    """The revision a registry is at, or None for an empty database; a database of other tables is refused.
    The tables are looked at after the revision, and a registry's tables and revision commit in one
    transaction: a database that shows tables but no revision is read once more, so a registry another
    process made between the two reads is found, not taken for another application's database."""
    current = current_revision(db)
    if current is None and not is_empty(db):
        current = current_revision(db)
        if current is None:
            raise _foreign(db)
    return current


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
    current = _registry_revision(db)
    if current == HEAD:
        return "ok"
    if current is None:
        return "empty"
    if not is_known(current):
        raise DatabaseError(
            f"database {db.display_url} is at schema revision {current}, which this t2reg does not know (it knows up "
            f"to {head_revision()}): a newer t2reg wrote it; upgrade t2reg to use it"
        )
    raise DatabaseError(f"database {db.display_url} is at schema revision {current}, this t2reg needs "
                        f"{head_revision()}", remedy=Remedy("upgrade its schema", ("db", "upgrade")))


def is_known(revision: str) -> bool:
    """Whether ``revision`` is one of this t2reg's migrations."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    try:
        return ScriptDirectory.from_config(_script_config()).get_revision(revision) is not None
    except CommandError:
        return False
