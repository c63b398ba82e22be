"""Alembic: one head, up from empty to head and down to base, and no drift from the ORM."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

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
    assert schema.head_revision() == "0007"


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


def _old_scores(db):
    """A registry at revision 0003 with scores of two versions and a base model, as they were recorded then."""
    now = "2026-01-01 00:00:00+00:00"
    statements = [
        "INSERT INTO base_models (id, name, revision, architecture, source, config, shapes, created_at) VALUES "
        f"(1, 'tiny', '', 'LlamaForCausalLM', 'local', '{{}}', '{{}}', '{now}')",
        f"INSERT INTO experts (id, name, base_model_id, task, description, created_at) VALUES (1, 'e', 1, 'arc-easy', '', "
        f"'{now}')",
        *(f"INSERT INTO expert_versions (id, expert_id, version, blob_sha256, size, n_params, parametrization, "
          f"renormalize, source, status, created_at, metadata) VALUES ({v}, 1, {v}, 'ab', 1, 1, 'scale', 'nuclear', "
          f"'native', 'live', '{now}', '{{}}')" for v in (1, 2)),
        # version 1 scored twice: only the newest is the latest; version 2 once
        *(f"INSERT INTO evaluations (id, version_id, task, metric, value, split, n, source, created_at, is_latest, "
          f"is_latest_in_split) VALUES ({i}, {v}, 'arc-easy', 'accuracy', {value}, 'test', 100, 'eval', '{now}', "
          f"{latest}, {latest})"
          for i, v, value, latest in ((1, 1, 0.3, "false"), (2, 1, 0.4, "true"), (3, 2, 0.35, "true"))),
        "INSERT INTO model_evaluations (id, model_id, task, metric, value, split, n, source, created_at) VALUES "
        f"(1, 1, 'gsm8k', 'accuracy', 0.1, 'test', 10, 'eval', '{now}')",
    ]
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def test_old_scores_move_to_their_tasks_legacy_protocol_and_still_rank(empty_db, tmp_path):
    from t2reg.registry import Registry
    from t2reg.settings import load_settings

    schema.upgrade(empty_db, "0003")
    _old_scores(empty_db)
    schema.upgrade(empty_db)
    with empty_db.engine.connect() as conn:
        protocols = dict(conn.execute(text("SELECT id, uses FROM protocols")).all())
        assert protocols == {"legacy:arc-easy": 3, "legacy:gsm8k": 1}
        assert {r[0] for r in conn.execute(text("SELECT protocol_id FROM evaluations"))} == {"legacy:arc-easy"}
    registry = Registry(load_settings(home=tmp_path / "home", database_url=empty_db.url))
    ranked = registry.best("arc-easy")
    assert [(r.ref, r.value, r.protocol) for r in ranked] == [("e:1", 0.4, "legacy:arc-easy"),
                                                              ("e:2", 0.35, "legacy:arc-easy")]
    assert ranked[1].overlaps_leader  # 0.35 and 0.40 at n = 100 are not told apart
    assert [e.protocol for e in registry.model_evaluations("tiny")] == ["legacy:gsm8k"]
    registry.close()
    schema.downgrade(empty_db, "0003")  # and back: one latest row per version, task and metric
    with empty_db.engine.connect() as conn:
        latest = conn.execute(text("SELECT id FROM evaluations WHERE is_latest ORDER BY id")).scalars().all()
    assert latest == [2, 3]


P = "0123456789ab"  # a measured protocol's id
BEFORE, AFTER = "2026-11-29 15:00:00+00:00", "2026-11-29 19:00:00+00:00"  # either side of the <bos> fix


def _gemma_and_llama_scores(db):
    """A registry at 0006: an expert on a Gemma 3 model and one on a Llama model, scored under ``P`` before
    and after the fix (and under a legacy protocol), and the Gemma base model itself before and after."""
    statements = [
        *(f"INSERT INTO base_models (id, name, revision, architecture, source, config, shapes, created_at) VALUES "
          f"({i}, '{name}', '', '{arch}', 'local', '{{}}', '{{}}', '{BEFORE}')"
          for i, name, arch in ((1, 'gemma', 'Gemma3ForCausalLM'), (2, 'llama', 'LlamaForCausalLM'))),
        *(f"INSERT INTO experts (id, name, base_model_id, task, description, created_at) VALUES "
          f"({i}, '{name}', {i}, 'arc-easy', '', '{BEFORE}')" for i, name in ((1, 'g'), (2, 'l'))),
        *(f"INSERT INTO expert_versions (id, expert_id, version, blob_sha256, size, n_params, parametrization, "
          f"renormalize, source, status, created_at, metadata) VALUES ({i}, {i}, 1, 'ab', 1, 1, 'scale', 'nuclear', "
          f"'native', 'live', '{BEFORE}', '{{}}')" for i in (1, 2)),
        f"INSERT INTO protocols (id, task, spec, uses, created_at) VALUES ('{P}', 'arc-easy', "
        f"'{{\"task\": \"arc-easy\", \"n\": 100}}', 5, '{BEFORE}')",
        f"INSERT INTO protocols (id, task, spec, uses, created_at) VALUES ('legacy:arc-easy', 'arc-easy', "
        f"'{{\"task\": \"arc-easy\", \"legacy\": true}}', 1, '{BEFORE}')",
        *(f"INSERT INTO evaluations (id, version_id, task, metric, value, split, n, source, created_at, is_latest, "
          f"is_latest_in_split, protocol_id, results_sha256) VALUES ({i}, {v}, 'arc-easy', 'accuracy', {value}, "
          f"'test', 100, 'eval', '{when}', {latest}, {latest}, '{protocol}', '{results}')"
          for i, v, value, when, latest, protocol, results in (
              (1, 1, 0.35, BEFORE, "false", P, "r1"),  # Gemma, before the fix: moves
              (2, 1, 0.30, BEFORE, "true", "legacy:arc-easy", "r0"),  # legacy: stays
              (3, 1, 0.60, AFTER, "true", P, "r3"),  # Gemma, after: stays, and stays the latest
              (4, 2, 0.50, BEFORE, "true", P, "r4"),  # Llama: stays
          )),
        *(f"INSERT INTO model_evaluations (id, model_id, task, metric, value, split, n, source, created_at, "
          f"protocol_id, results_sha256) VALUES ({i}, {m}, 'arc-easy', 'accuracy', {value}, 'test', 100, 'eval', "
          f"'{when}', '{P}', 'm{i}')"
          for i, m, value, when in ((1, 1, 0.33, BEFORE), (2, 1, 0.58, AFTER), (3, 2, 0.45, BEFORE))),
    ]
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def _scores(db):
    with db.engine.connect() as conn:
        return (dict(conn.execute(text("SELECT id, protocol_id FROM evaluations")).all()),
                dict(conn.execute(text("SELECT id, protocol_id FROM model_evaluations")).all()),
                conn.execute(text("SELECT id FROM evaluations WHERE is_latest ORDER BY id")).scalars().all(),
                dict(conn.execute(text("SELECT id, uses FROM protocols")).all()))


def test_gemma_scores_from_before_the_bos_fix_move_to_their_own_protocol(empty_db, tmp_path):
    from t2reg.registry import Registry
    from t2reg.settings import load_settings

    schema.upgrade(empty_db, "0006")
    _gemma_and_llama_scores(empty_db)
    before = _scores(empty_db)
    schema.upgrade(empty_db)
    evaluations, model_scores, latest, uses = _scores(empty_db)
    assert evaluations == {1: f"nobos:{P}", 2: "legacy:arc-easy", 3: P, 4: P}
    assert model_scores == {1: f"nobos:{P}", 2: P, 3: P}
    assert latest == [1, 2, 3, 4]  # row 1 is now the newest of its own protocol
    assert uses == {P: 3, f"nobos:{P}": 2, "legacy:arc-easy": 1}  # two runs (results blobs) moved
    registry = Registry(load_settings(home=tmp_path / "home", database_url=empty_db.url))
    assert [(r.ref, r.value) for r in registry.best("arc-easy", protocol=P)] == [("g:1", 0.6), ("l:1", 0.5)]
    assert [(r.ref, r.value) for r in registry.best("arc-easy", protocol=f"nobos:{P}")] == [("g:1", 0.35)]
    voided = registry.protocols("arc-easy")
    spec = next(p.spec for p in voided if p.id == f"nobos:{P}")
    assert spec["legacy"] and "<bos>" in spec["note"] and spec["measured_as"]["n"] == 100
    registry.close()
    schema.downgrade(empty_db, "0006")
    assert _scores(empty_db) == before
