"""Blobs kept in the database itself, and registry-wide settings (which blob store the registry uses).

Registries from before this revision have no ``blob_store`` setting: they keep their
blobs in files, as before.

Revision ID: 0006
Revises: 0005
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from t2reg.errors import DatabaseError

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("touched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blobs")),
    )
    op.create_table(
        "registry_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_registry_settings")),
    )


def downgrade() -> None:
    # Blobs kept in the database would go with the table: refuse rather than lose them.
    if op.get_bind().execute(sa.text("SELECT count(*) FROM blobs")).scalar():
        raise DatabaseError("this registry keeps blobs in its database; downgrading below 0006 would delete them")
    op.drop_table("registry_settings")
    op.drop_table("blobs")
