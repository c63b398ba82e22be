"""Alembic: one head, up from empty to head and down to base, and no drift from the ORM."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from t2reg.migrations import HEAD
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


def test_exactly_one_head_and_it_is_the_one_every_open_checks_for():
    assert schema.head_revision() == "0008" == HEAD


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
SCORES_0006 = (  # id, version, metric, value, split, time, protocol, results blob
    (1, 1, "accuracy", 0.35, "'test'", BEFORE, P, "'r1'"),  # Gemma, one run before the fix: moves ...
    (2, 1, "accuracy_norm", 0.30, "'test'", BEFORE, P, "'r1'"),  # ... with its other metric
    (3, 1, "accuracy", 0.36, "NULL", BEFORE, P, "NULL"),  # Gemma, no split and no results: moves
    (4, 1, "accuracy", 0.30, "'test'", BEFORE, "legacy:arc-easy", "'r0'"),  # legacy: stays
    (5, 1, "accuracy", 0.60, "'test'", AFTER, P, "'r5'"),  # Gemma, after the fix: stays
    (6, 1, "accuracy_norm", 0.55, "'test'", AFTER, P, "'r5'"),
    (7, 2, "accuracy", 0.50, "'test'", BEFORE, P, "'r7'"),  # Llama: stays
)


def _latest(rows, key):
    """The ids that are newest of their group, as the registry keeps them."""
    newest = {}
    for row in rows:
        newest[key(row)] = max(newest.get(key(row), 0), row[0])
    return sorted(newest.values())


def _gemma_and_llama_scores(db):
    """A registry at 0006: an expert on a Gemma 3 model and one on a Llama model, scored under ``P`` before
    and after the fix (and under a legacy protocol), and the Gemma base model itself before and after."""
    latest = _latest(SCORES_0006, lambda r: (r[1], r[2], r[6]))
    latest_in_split = _latest(SCORES_0006, lambda r: (r[1], r[2], r[6], r[4]))
    statements = [
        *(f"INSERT INTO base_models (id, name, revision, architecture, source, config, shapes, created_at) VALUES "
          f"({i}, '{name}', '', '{arch}', 'local', '{{}}', '{{}}', '{BEFORE}')"
          for i, name, arch in ((1, "gemma", "Gemma3ForCausalLM"), (2, "llama", "LlamaForCausalLM"))),
        *(f"INSERT INTO experts (id, name, base_model_id, task, description, created_at) VALUES "
          f"({i}, '{name}', {i}, 'arc-easy', '', '{BEFORE}')" for i, name in ((1, "g"), (2, "l"))),
        *(f"INSERT INTO expert_versions (id, expert_id, version, blob_sha256, size, n_params, parametrization, "
          f"renormalize, source, status, created_at, metadata) VALUES ({i}, {i}, 1, 'ab', 1, 1, 'scale', 'nuclear', "
          f"'native', 'live', '{BEFORE}', '{{}}')" for i in (1, 2)),
        # used once: fewer than the two runs that move, so the migration takes what there is (and gives it back)
        f"INSERT INTO protocols (id, task, spec, uses, created_at) VALUES ('{P}', 'arc-easy', "
        f"'{{\"task\": \"arc-easy\", \"n\": 100}}', 1, '{BEFORE}')",
        f"INSERT INTO protocols (id, task, spec, uses, created_at) VALUES ('legacy:arc-easy', 'arc-easy', "
        f"'{{\"task\": \"arc-easy\", \"legacy\": true}}', 1, '{BEFORE}')",
        *(f"INSERT INTO evaluations (id, version_id, task, metric, value, split, n, source, created_at, is_latest, "
          f"is_latest_in_split, protocol_id, results_sha256) VALUES ({i}, {v}, 'arc-easy', '{metric}', {value}, "
          f"{split}, 100, 'eval', '{when}', {str(i in latest).lower()}, {str(i in latest_in_split).lower()}, "
          f"'{protocol}', {results})"
          for i, v, metric, value, split, when, protocol, results in SCORES_0006),
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
                conn.execute(text("SELECT id FROM evaluations WHERE is_latest_in_split ORDER BY id")).scalars().all(),
                dict(conn.execute(text("SELECT id, uses FROM protocols")).all()))


def test_gemma_scores_from_before_the_bos_fix_move_to_their_own_protocol(empty_db, tmp_path):
    from t2reg.registry import Registry
    from t2reg.settings import load_settings

    schema.upgrade(empty_db, "0006")
    _gemma_and_llama_scores(empty_db)
    before = _scores(empty_db)
    assert before[2] == [4, 5, 6, 7] and before[3] == [3, 4, 5, 6, 7]
    schema.upgrade(empty_db)
    evaluations, model_scores, latest, latest_in_split, uses = _scores(empty_db)
    voided = f"nobos:{P}"
    assert evaluations == {1: voided, 2: voided, 3: voided, 4: "legacy:arc-easy", 5: P, 6: P, 7: P}
    assert model_scores == {1: voided, 2: P, 3: P}
    assert latest == [2, 3, 4, 5, 6, 7]  # rows 2 and 3 are now the newest of their own protocol
    assert latest_in_split == [1, 2, 3, 4, 5, 6, 7]  # row 1 too, in its split (row 3 has none)
    assert uses == {P: 0, voided: 2, "legacy:arc-easy": 1}  # two runs moved: the expert's and the model's
    registry = Registry(load_settings(home=tmp_path / "home", database_url=empty_db.url))
    # by default the measured protocol, though the voided one is used more
    assert [(r.ref, r.value, r.protocol) for r in registry.best("arc-easy")] == [("g:1", 0.6, P), ("l:1", 0.5, P)]
    assert [(r.ref, r.value) for r in registry.best("arc-easy", protocol=voided)] == [("g:1", 0.36)]
    spec = next(p.spec for p in registry.protocols("arc-easy") if p.id == voided)
    assert spec["legacy"] and "<bos>" in spec["note"] and spec["measured_as"]["n"] == 100
    registry.close()
    schema.downgrade(empty_db, "0006")
    assert _scores(empty_db) == before


def test_a_downgrade_restores_the_protocol_of_scores_that_only_ever_arrived_voided(empty_db):
    """A bundle import can bring ``nobos:Q`` scores into a registry that never held ``Q``: downgrading puts
    them back under ``Q``, created from the spec they were measured under."""
    import json

    from t2reg.protocols import without_bos_id, without_bos_spec

    schema.upgrade(empty_db, "0006")
    _gemma_and_llama_scores(empty_db)
    schema.upgrade(empty_db)
    q = "fedcba987654"
    spec = json.dumps(without_bos_spec("arc-easy", {"id": q, "task": "arc-easy", "n": 7}))
    with empty_db.engine.begin() as conn:
        conn.execute(text("INSERT INTO protocols (id, task, spec, uses, created_at) VALUES (:id, 'arc-easy', :spec, "
                          f"1, '{AFTER}')"), {"id": without_bos_id(q), "spec": spec})
        conn.execute(text("INSERT INTO evaluations (id, version_id, task, metric, value, split, n, source, "
                          "created_at, is_latest, is_latest_in_split, protocol_id) VALUES (8, 1, 'arc-easy', "
                          f"'accuracy', 0.2, 'test', 7, 'import', '{BEFORE}', true, true, :voided)"),
                     {"voided": without_bos_id(q)})
    schema.downgrade(empty_db, "0006")
    with empty_db.engine.connect() as conn:
        assert conn.execute(text("SELECT protocol_id FROM evaluations WHERE id = 8")).scalar() == q
        restored = conn.execute(text("SELECT uses, spec FROM protocols WHERE id = :q"), {"q": q}).one()
        assert conn.execute(text("SELECT COUNT(*) FROM protocols WHERE id LIKE 'nobos:%'")).scalar() == 0
    assert restored[0] == 1 and (json.loads(restored[1]) if isinstance(restored[1], str) else restored[1])["n"] == 7


def test_a_downgrade_below_0008_is_refused_while_an_alias_holds_more_than_100_characters(empty_db):
    from t2reg.errors import DatabaseError

    schema.upgrade(empty_db)
    with empty_db.engine.begin() as conn:
        conn.execute(text("INSERT INTO base_models (id, name, revision, architecture, source, config, shapes, "
                          "created_at) VALUES (1, 'tiny', '', 'LlamaForCausalLM', 'local', '{}', '{}', "
                          "'2026-01-01 00:00:00+00:00')"))
        conn.execute(text("INSERT INTO model_aliases (alias, model_id, created_at) VALUES (:a, 1, "
                          "'2026-01-01 00:00:00+00:00')"), {"a": "a" * 128})
    with pytest.raises(DatabaseError, match="128 characters"):
        schema.downgrade(empty_db, "0007")
    assert schema.current_revision(empty_db) == "0008"
    with empty_db.engine.begin() as conn:
        conn.execute(text("UPDATE model_aliases SET alias = 'short'"))
    schema.downgrade(empty_db, "0007")
    with empty_db.engine.connect() as conn:
        assert conn.execute(text("SELECT alias FROM model_aliases")).scalar() == "short"
