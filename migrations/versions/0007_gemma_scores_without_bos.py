"""Gemma scores measured without ``<bos>`` move to their own protocols.

Until 2026-11-29 18:00 UTC t2reg scored Gemma 2 and 3 models without the
``<bos>`` those families are trained behind (Gemma-3-270M: 0.35 on 150
ARC-Easy questions without it, 0.63 with it). Such scores measured a crippled
model, yet they carry the same protocol ids as scores taken since, so ``best``
and ``compare`` would treat both alike. This revision moves every Gemma score
recorded before the fix under a measured protocol ``P`` to ``nobos:P``, a
protocol whose spec says why; they keep ranking among themselves, never with
new scores, and ``compare`` measures such subjects afresh.

The families and the moment are frozen here, as they were when the fix landed.

Revision ID: 0007
Revises: 0006
"""
import json
from datetime import datetime, timezone
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

FIX_LANDED = datetime(2026, 11, 29, 18, 0, 1, tzinfo=timezone.utc)
BOS_FIRST_ARCHITECTURES = ("Gemma2ForCausalLM", "Gemma3ForCausalLM")
PREFIX = "nobos:"  # t2reg.protocols.without_bos_id
NOTE = ("measured without the <bos> this model family needs (before 2026-11-29 18:00 UTC): the scores describe a "
        "crippled model; the spec it was measured under is in 'measured_as'")

_GEMMA = ", ".join(f"'{name}'" for name in BOS_FIRST_ARCHITECTURES)
# Each score table, with the query that finds its Gemma rows: (id, protocol_id, created_at, results_sha256).
SCORES = {
    "evaluations": "SELECT e.id, e.protocol_id, e.created_at, e.results_sha256 FROM evaluations e "
                   "JOIN expert_versions v ON v.id = e.version_id JOIN experts x ON x.id = v.expert_id "
                   f"JOIN base_models b ON b.id = x.base_model_id WHERE b.architecture IN ({_GEMMA})",
    "model_evaluations": "SELECT e.id, e.protocol_id, e.created_at, e.results_sha256 FROM model_evaluations e "
                         f"JOIN base_models b ON b.id = e.model_id WHERE b.architecture IN ({_GEMMA})",
}


def upgrade() -> None:
    connection = op.get_bind()
    moved: dict[str, list[tuple[str, int]]] = {}  # original protocol -> (table, row id)
    runs: dict[str, set] = {}  # original protocol -> the runs that used it (one results blob per run)
    for table, query in SCORES.items():
        for row_id, protocol_id, created_at, results in connection.execute(sa.text(query)):
            if _measured(protocol_id) and _before_fix(created_at):
                moved.setdefault(protocol_id, []).append((table, row_id))
                runs.setdefault(protocol_id, set()).add(results or (table, row_id))
    for protocol_id, rows in sorted(moved.items()):
        _move(connection, protocol_id, rows, len(runs[protocol_id]))
    if moved:
        _recompute_latest_flags()


def downgrade() -> None:
    connection = op.get_bind()
    voided = connection.execute(sa.text("SELECT id, spec, uses FROM protocols WHERE id LIKE :prefix"),
                                {"prefix": PREFIX + "%"}).all()
    for protocol_id, _spec, uses in voided:
        original = protocol_id[len(PREFIX):]
        for table in SCORES:
            connection.execute(sa.text(f"UPDATE {table} SET protocol_id = :original WHERE protocol_id = :voided"),
                               {"original": original, "voided": protocol_id})
        connection.execute(sa.text("UPDATE protocols SET uses = uses + :uses WHERE id = :original"),
                           {"uses": uses, "original": original})
        connection.execute(sa.text("DELETE FROM protocols WHERE id = :voided"), {"voided": protocol_id})
    if voided:
        _recompute_latest_flags()


def _measured(protocol_id: str) -> bool:
    # legacy:<task> and reported:<task> scores say nothing of how they were taken; they stay where they are.
    return ":" not in protocol_id


def _before_fix(created_at) -> bool:
    # SQLite hands back a naive string (stored in UTC), PostgreSQL an aware datetime.
    when = datetime.fromisoformat(created_at) if isinstance(created_at, str) else created_at
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)) < FIX_LANDED


def _move(connection, protocol_id: str, rows: list[tuple[str, int]], runs: int) -> None:
    task, spec = connection.execute(sa.text("SELECT task, spec FROM protocols WHERE id = :id"),
                                    {"id": protocol_id}).one()
    spec = json.loads(spec) if isinstance(spec, str) else spec  # SQLite: text; PostgreSQL: decoded
    voided = PREFIX + protocol_id
    protocols = sa.table("protocols", sa.column("id"), sa.column("task"), sa.column("spec", sa.JSON),
                         sa.column("uses"), sa.column("created_at"))
    connection.execute(protocols.insert().values(
        id=voided, task=task, uses=runs, created_at=datetime.now(timezone.utc),
        spec={"task": task, "legacy": True, "note": NOTE, "measured_as": spec}))
    connection.execute(sa.text("UPDATE protocols SET uses = CASE WHEN uses > :runs THEN uses - :runs ELSE 0 END "
                               "WHERE id = :id"), {"runs": runs, "id": protocol_id})
    for table in SCORES:
        ids = [row_id for t, row_id in rows if t == table]
        if ids:
            connection.execute(sa.text(f"UPDATE {table} SET protocol_id = :voided WHERE id IN :ids")
                               .bindparams(sa.bindparam("ids", expanding=True)), {"voided": voided, "ids": ids})


def _recompute_latest_flags() -> None:
    # The newest row per (version, task, metric, protocol) is the latest; moving rows changed which that is.
    op.execute(sa.text("UPDATE evaluations SET is_latest = (id IN "
                       "(SELECT MAX(id) FROM evaluations GROUP BY version_id, task, metric, protocol_id))"))
    op.execute(sa.text("UPDATE evaluations SET is_latest_in_split = (id IN "
                       "(SELECT MAX(id) FROM evaluations GROUP BY version_id, task, metric, protocol_id, split))"))
