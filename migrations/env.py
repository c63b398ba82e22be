"""Alembic environment: t2reg's own version table, batch mode for SQLite."""

from __future__ import annotations

from alembic import context

from t2reg.registry.db import migration_connection
from t2reg.registry.orm import Base
from t2reg.registry.schema import VERSION_TABLE


def _engine():
    engine = context.config.attributes.get("engine")
    if engine is not None:
        return engine
    # Run by the alembic CLI: resolve the URL the way every t2reg command does.
    from t2reg.registry.db import Database
    from t2reg.settings import load_settings

    return Database(load_settings().database_url).engine


def run_migrations_online() -> None:
    # One transaction under the schema lock (see migration_connection): alembic finds it open and runs every
    # step inside it, so a second process making the same registry waits and then finds it at head.
    with migration_connection(_engine()) as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            version_table=VERSION_TABLE,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("t2reg migrations run online only: `t2reg db upgrade`")
run_migrations_online()
