"""When a version was soft-deleted, so ``gc --purge-deleted`` can honour a grace period.

Versions deleted before this revision count as deleted at the moment of the
upgrade. Downgrading turns purged versions back into deleted ones (their files
are gone; ``verify`` reports them missing).

Revision ID: 0005
Revises: 0004
"""
from datetime import datetime, timezone
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_versions = sa.table("expert_versions", sa.column("status", sa.String),
                     sa.column("deleted_at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    with op.batch_alter_table("expert_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(_versions.update().where(_versions.c.status == "deleted")
               .values(deleted_at=datetime.now(timezone.utc)))


def downgrade() -> None:
    op.execute(_versions.update().where(_versions.c.status == "purged").values(status="deleted"))
    with op.batch_alter_table("expert_versions", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
