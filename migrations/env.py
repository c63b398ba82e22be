"""Alembic environment: t2reg's own version table, batch mode for SQLite."""

from __future__ import annotations

from alembic import context

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
    engine = _engine()
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # Batch mode rebuilds tables; foreign keys must be off while it does
            # (a PRAGMA is ignored inside a transaction, so set it on the raw connection).
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            version_table=VERSION_TABLE,
            render_as_batch=True,
            compare_type=True,
        )
        try:
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if engine.dialect.name == "sqlite":
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    raise SystemExit("t2reg migrations run online only: `t2reg db upgrade`")
run_migrations_online()
