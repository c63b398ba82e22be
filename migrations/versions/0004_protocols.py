"""Evaluation protocols and per-question results.

Every score now names the protocol it was measured under; ``best`` ranks only
scores that share one. Scores recorded before this revision move to a
per-task ``legacy:<task>`` protocol (they came from letter scoring and first-N
samples, and are ranked only among themselves). Rows may point at a blob of
per-question results.

Revision ID: 0004
Revises: 0003
"""
from datetime import datetime, timezone
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

SCORE_TABLES = ("evaluations", "model_evaluations")
LEGACY_NOTE = "recorded before protocols: option-letter scoring or the first rows of a split"


def upgrade() -> None:
    protocols = op.create_table(
        "protocols",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protocols")),
    )
    with op.batch_alter_table("protocols", schema=None) as batch_op:
        batch_op.create_index("ix_protocols_task_uses", ["task", "uses"], unique=False)
    _add_legacy_protocols(protocols)
    for table in SCORE_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("protocol_id", sa.String(length=128), nullable=True))
            batch_op.add_column(sa.Column("results_sha256", sa.String(length=64), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET protocol_id = 'legacy:' || task"))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("protocol_id", existing_type=sa.String(length=128), nullable=False)
            batch_op.create_foreign_key(op.f(f"fk_{table}_protocol_id_protocols"), "protocols", ["protocol_id"], ["id"])
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_rank")
        batch_op.drop_index("ix_evaluations_rank_split")
        batch_op.create_index("ix_evaluations_rank", ["task", "metric", "protocol_id", "is_latest", "value", "id"],
                              unique=False)
        batch_op.create_index("ix_evaluations_rank_split",
                              ["task", "metric", "protocol_id", "split", "is_latest_in_split", "value", "id"],
                              unique=False)


def _add_legacy_protocols(protocols: sa.Table) -> None:
    # One legacy protocol per task that has scores, so they keep ranking among themselves.
    counts: dict[str, int] = {}
    connection = op.get_bind()
    for table in SCORE_TABLES:
        for task, count in connection.execute(sa.text(f"SELECT task, COUNT(*) FROM {table} GROUP BY task")):
            counts[task] = counts.get(task, 0) + count
    now = datetime.now(timezone.utc)
    op.bulk_insert(protocols, [
        {"id": f"legacy:{task}", "task": task, "spec": {"task": task, "legacy": True, "note": LEGACY_NOTE},
         "uses": count, "created_at": now}
        for task, count in sorted(counts.items())
    ])


def downgrade() -> None:
    # The newest-row flags were kept per protocol; without protocols they are per (version, task, metric).
    op.execute(sa.text("UPDATE evaluations SET is_latest = (id IN "
                       "(SELECT MAX(id) FROM evaluations GROUP BY version_id, task, metric))"))
    op.execute(sa.text("UPDATE evaluations SET is_latest_in_split = (id IN "
                       "(SELECT MAX(id) FROM evaluations GROUP BY version_id, task, metric, split))"))
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_rank")
        batch_op.drop_index("ix_evaluations_rank_split")
        batch_op.create_index("ix_evaluations_rank", ["task", "metric", "is_latest", "value", "id"], unique=False)
        batch_op.create_index("ix_evaluations_rank_split", ["task", "metric", "split", "is_latest_in_split", "value",
                                                            "id"], unique=False)
    for table in SCORE_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"fk_{table}_protocol_id_protocols"), type_="foreignkey")
            batch_op.drop_column("results_sha256")
            batch_op.drop_column("protocol_id")
    with op.batch_alter_table("protocols", schema=None) as batch_op:
        batch_op.drop_index("ix_protocols_task_uses")
    op.drop_table("protocols")
