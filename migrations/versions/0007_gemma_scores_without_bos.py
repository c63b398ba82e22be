"""Gemma scores measured without ``<bos>`` move to their own protocols.

Until 2026-11-29 18:00 UTC t2reg scored Gemma 2 and 3 models without the
``<bos>`` those families are trained behind (Gemma-3-270M: 0.35 on 150
ARC-Easy questions without it, 0.63 with it). Such scores measured a crippled
model, yet they carry the same protocol ids as scores taken since, so ``best``
and ``compare`` would treat both alike. This revision moves every Gemma score
recorded before the fix under a measured protocol ``P`` to ``nobos:P``, a
protocol whose spec says why; they keep ranking among themselves, never with
new scores, and ``compare`` measures such subjects afresh.

The families and the moment are frozen here, as they were when the fix landed
(t2reg.protocols keeps the same rule for bundles that older registries
export). The rule goes by when a score was recorded: a job started before
the fix and finished after it, or a client not yet upgraded, escapes it.

Revision ID: 0007
Revises: 0006
"""
from collections import Counter
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
# Each score table, with the query that finds its Gemma rows: id, protocol, time, and what tells runs apart
# (the subject, and the task, metric and split of each row).
SCORES = {
    "evaluations": "SELECT e.id, e.protocol_id, e.created_at, e.version_id, e.task, e.metric, e.split "
                   "FROM evaluations e JOIN expert_versions v ON v.id = e.version_id "
                   "JOIN experts x ON x.id = v.expert_id "
                   f"JOIN base_models b ON b.id = x.base_model_id WHERE b.architecture IN ({_GEMMA})",
    "model_evaluations": "SELECT e.id, e.protocol_id, e.created_at, e.model_id, e.task, e.metric, e.split "
                         "FROM model_evaluations e "
                         f"JOIN base_models b ON b.id = e.model_id WHERE b.architecture IN ({_GEMMA})",
}
PROTOCOLS = sa.table("protocols", sa.column("id", sa.String(128)), sa.column("task", sa.String(100)),
                     sa.column("spec", sa.JSON()), sa.column("uses", sa.Integer()),
                     sa.column("created_at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    connection = op.get_bind()
    moved: dict[str, list[tuple[str, int]]] = {}  # original protocol -> (table, row id)
    rows_per_score: dict[str, Counter] = {}  # original protocol -> rows per (table, subject, task, metric, split)
    for table, query in SCORES.items():
        for row_id, protocol_id, created_at, subject, task, metric, split in connection.execute(sa.text(query)):
            if _measured(protocol_id) and _before_fix(created_at):
                moved.setdefault(protocol_id, []).append((table, row_id))
                rows_per_score.setdefault(protocol_id, Counter())[(table, subject, task, metric, split)] += 1
    for protocol_id, rows in sorted(moved.items()):
        _move(connection, protocol_id, rows, _runs(rows_per_score[protocol_id]))
    if moved:
        _recompute_latest_flags()


def downgrade() -> None:
    connection = op.get_bind()
    voided = connection.execute(sa.select(PROTOCOLS.c.id, PROTOCOLS.c.spec, PROTOCOLS.c.uses)
                                .where(PROTOCOLS.c.id.like(PREFIX + "%"))).all()
    for protocol_id, spec, uses in voided:
        original = protocol_id[len(PREFIX):]
        back = spec.get("moved_uses", uses)
        if connection.execute(sa.select(PROTOCOLS.c.id).where(PROTOCOLS.c.id == original)).first() is None:
            # Only there through a bundle import of voided scores: the protocol they were measured under.
            connection.execute(PROTOCOLS.insert().values(id=original, task=spec["task"], spec=spec["measured_as"],
                                                         uses=back, created_at=datetime.now(timezone.utc)))
        else:
            connection.execute(PROTOCOLS.update().where(PROTOCOLS.c.id == original)
                               .values(uses=PROTOCOLS.c.uses + back))
        for table in SCORES:
            connection.execute(sa.text(f"UPDATE {table} SET protocol_id = :original WHERE protocol_id = :voided"),
                               {"original": original, "voided": protocol_id})
        connection.execute(PROTOCOLS.delete().where(PROTOCOLS.c.id == protocol_id))
    if voided:
        _recompute_latest_flags()


def _runs(rows: Counter) -> int:
    # A run records several metrics of one subject at once: a subject's runs are the rows of its most
    # recorded (task, metric, split); the protocol's are the sum over subjects.
    most: dict[tuple, int] = {}
    for (table, subject, *_score), count in rows.items():
        most[(table, subject)] = max(most.get((table, subject), 0), count)
    return sum(most.values())


def _measured(protocol_id: str) -> bool:
    # legacy:<task> and reported:<task> scores say nothing of how they were taken; they stay where they are.
    return ":" not in protocol_id


def _before_fix(created_at) -> bool:
    # SQLite hands back a naive string (stored in UTC), PostgreSQL an aware datetime.
    when = datetime.fromisoformat(created_at) if isinstance(created_at, str) else created_at
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)) < FIX_LANDED


def _move(connection, protocol_id: str, rows: list[tuple[str, int]], runs: int) -> None:
    task, spec, uses = connection.execute(sa.select(PROTOCOLS.c.task, PROTOCOLS.c.spec, PROTOCOLS.c.uses)
                                          .where(PROTOCOLS.c.id == protocol_id)).one()
    taken = min(uses, runs)  # what the original protocol gives up, and gets back on a downgrade
    connection.execute(PROTOCOLS.insert().values(
        id=PREFIX + protocol_id, task=task, uses=runs, created_at=datetime.now(timezone.utc),
        spec={"task": task, "legacy": True, "note": NOTE, "measured_as": spec, "moved_uses": taken}))
    connection.execute(PROTOCOLS.update().where(PROTOCOLS.c.id == protocol_id).values(uses=uses - taken))
    for table in SCORES:
        ids = [row_id for t, row_id in rows if t == table]
        if ids:
            connection.execute(sa.text(f"UPDATE {table} SET protocol_id = :voided WHERE id IN :ids")
                               .bindparams(sa.bindparam("ids", expanding=True)),
                               {"voided": PREFIX + protocol_id, "ids": ids})


def _recompute_latest_flags() -> None:
    # The newest row per (version, task, metric, protocol) is the latest; moving rows changed which that is.
    op.execute(sa.text("UPDATE evaluations SET is_latest = (id IN "
                       "(SELECT MAX(id) FROM evaluations GROUP BY version_id, task, metric, protocol_id))"))
    op.execute(sa.text("UPDATE evaluations SET is_latest_in_split = (id IN "
                       "(SELECT MAX(id) FROM evaluations GROUP BY version_id, task, metric, protocol_id, split))"))
