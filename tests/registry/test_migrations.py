"""Alembic: one head, up from empty to head and down to base, and no drift from the ORM."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from t2reg.registry import schema
from t2reg.registry.db import Database
from t2reg.registry.orm import Base


@pytest.fixture
def empty_db(backend, tmp_path, request):
    if backend == "postgres":
        server = request.getfixturevalue("postgres")
        name = f"m_{tmp_path.name[-20:].replace('-', '_').lower()}"
        db = Database(server.create_database(name))
    else:
        db = Database(f"sqlite:///{tmp_path / 'empty.db'}", create=True)
    yield db
    db.dispose()


def _tables(db):
    with db.engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_exactly_one_head():
    assert schema.head_revision() == "0004"


def test_upgrade_from_empty_to_head_and_down_to_base(empty_db):
    assert schema.check_schema(empty_db) == "empty"
    schema.upgrade(empty_db)
    assert schema.current_revision(empty_db) == schema.head_revision()
    assert _tables(empty_db) >= set(Base.metadata.tables) | {schema.VERSION_TABLE}
    schema.downgrade(empty_db, "base")
    assert schema.current_revision(empty_db) is None
    assert _tables(empty_db) <= {schema.VERSION_TABLE}
    schema.upgrade(empty_db)
    assert schema.check_schema(empty_db) == "ok"


def test_migrations_match_the_orm(empty_db):
    schema.upgrade(empty_db)
    with empty_db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": schema.VERSION_TABLE})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
