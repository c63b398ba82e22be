"""t2reg.json parsed strictly: a manifest written by t2reg reads back equal; anything else is one clear error."""

import contextlib
import io
import json
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from t2reg.cli.main import _run
from t2reg.errors import InvalidInputError, T2RegError
from t2reg.protocols import Protocol
from t2reg.registry.bundles.manifest import (
    BundleFile,
    BundleLineage,
    BundleModel,
    BundleProtocol,
    BundleVersion,
    FileKind,
    Manifest,
    parse_manifest,
)
from t2reg.registry.entities import EvaluationInfo
from t2reg.enums import Relation, Source
from tests.helpers.registry_state import snapshot
from tests.registry.test_bundles import PROTOCOL, history

A, B, R = "a" * 64, "b" * 64, "c" * 64


def manifest() -> Manifest:
    parent = BundleVersion("p:1", "p", "m", "gsm8k", "", Source.NATIVE, A, 10)
    child = BundleVersion(
        "c:2", "c", "m", "gsm8k", "two\nlines", Source.ADAPTED, B, 12, tags={"seed": "3"}, aliases=("prod",),
        evaluations=(EvaluationInfo("gsm8k", "accuracy", 0.5, "test", 2, "eval",
                                    datetime(2026, 1, 1, tzinfo=timezone.utc), "reported:gsm8k", R),),
        lineage=(BundleLineage(Relation.MIXTURE_COMPONENT, "p:1", "p", A, 0.5, {"k": [1, 2]}),))
    return Manifest(root="c:2", models=(BundleModel("m", "", "LlamaForCausalLM"),),
                    protocols=(BundleProtocol("reported:gsm8k", "gsm8k", {"task": "gsm8k", "reported": True}),),
                    versions=(parent, child),
                    files=(BundleFile(FileKind.EXPERT, A, 10), BundleFile(FileKind.EXPERT, B, 12),
                           BundleFile(FileKind.RESULTS, R, 7)))


def test_a_written_manifest_reads_back_equal():
    assert parse_manifest(manifest().to_json()) == manifest()


def _broken(change):
    data = json.loads(manifest().to_json())
    change(data)
    return json.dumps(data)


BROKEN = {
    "not json": ("{", "not JSON"),
    "NaN": (manifest().to_json().replace('"value": 0.5', '"value": NaN'), "not JSON"),
    "not a manifest": (_broken(lambda d: d.update(format="other")), "not a t2reg bundle manifest"),
    "newer format": (_broken(lambda d: d.update(format_version=2)), "format version 2"),
    "bool for a size": (_broken(lambda d: d["files"][0].update(size=True)), "size must be a whole number"),
    "absolute path": (_broken(lambda d: d["files"][0].update(path="/etc/passwd")), "derived from hashes"),
    "short hash": (_broken(lambda d: d["files"][0].update(sha256="abc")), "not a sha256"),
    "unknown file kind": (_broken(lambda d: d["files"][0].update(kind="script")), "unknown bundle file kind"),
    "parent after child": (_broken(lambda d: d["versions"].reverse()), "not listed before it"),
    "same key twice": (_broken(lambda d: d["versions"].append(d["versions"][0])), "listed twice"),
    "root missing": (_broken(lambda d: d.update(root="x:1")), "root version"),
    "unlisted file": (_broken(lambda d: d["files"].pop(2)), "are not listed"),
    "unlisted protocol": (_broken(lambda d: d["protocols"].clear()), "protocol 'reported:gsm8k' is not listed"),
    "bad alias": (_broken(lambda d: d["versions"][1].update(aliases=["../x"])), "alias"),
    "tag not text": (_broken(lambda d: d["versions"][1]["tags"].update(seed=3)), "tags.seed must be text"),
    "unknown relation": (_broken(lambda d: d["versions"][1]["lineage"][0].update(relation="stolen")), "relation"),
    "bad time": (_broken(lambda d: d["versions"][1]["evaluations"][0].update(created_at="yesterday")), "ISO 8601"),
    "control character": (_broken(lambda d: d["versions"][1].update(description="\x1b[2J")), "description"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_manifest_is_one_clear_error(case):
    text, words = BROKEN[case]
    with pytest.raises(InvalidInputError, match=words) as info:
        parse_manifest(text)
    assert "\n" not in str(info.value)


# -- fuzzing -----------------------------------------------------------------------------------------------
# A valid manifest, mutated where hypothesis chooses: a value replaced by another kind, a structure nested a
# thousand deep, 100k characters, numbers JSON can write but no registry stores (1e999, 1e308, 2**64, -0),
# names with control characters, keys removed or added, list items dropped or doubled. Parsing either gives a
# Manifest or refuses with InvalidInputError (exit 4) in one bounded line; nothing else. With a registry
# (below), an import either succeeds, and then every read command works, or is refused with a typed error and
# leaves the registry byte for byte as it was.

# A string standing for JSON text json.dumps will not write: a number (1e999, -0, 9...9) or a nesting 100k deep.
RAW = "\x00raw:"
RAW_NUMBERS = ["1e999", "-1e999", "1e308", "-0", "-0.0", "1E400", "9" * 400, "18446744073709551616",
               "9223372036854775808", "-9223372036854775809", "0.0000001", "1e-400", "NaN", "Infinity"]
HOSTILE_TEXT = ["evil\n", "a\x00b", "\x1b[2J", "\u202eevil", "\ud800", "..", "../../etc", "/abs", "a/b", " ", "",
                "x" * 129, "x" * 100_000, "reported:gsm8k", "legacy:gsm8k", "nobos:", "nobos:0123456789ab", "full",
                "1", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "yesterday", "a" * 64, "0" * 64,
                "experts/" + "a" * 64 + ".safetensors"]
KEYS = [k for k in HOSTILE_TEXT if len(k) < 200] + ["id", "task", "spec", "n", "legacy", "reported", "note",
                                                     "measured_as", "params", "weight", "value", "size", "path"]


def _nested(depth: int, kind: str):
    value = 0
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def _deep_text(depth: int, kind: str) -> str:
    """JSON text nested ``depth`` deep: written as text, since building it in Python would hit the recursion
    limit in this test before it reached t2reg."""
    return "[" * depth + "0" + "]" * depth if kind == "list" else '{"a":' * depth + "0" + "}" * depth


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 1, 2**63 - 1, 2**63, 2**64]),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(RAW_NUMBERS).map(lambda t: RAW + t),
    st.text(max_size=20), st.sampled_from(HOSTILE_TEXT),
)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}", fullmatch=True)
plausible = st.one_of(  # values a registry may well take: so that imports succeed and the reads get tested
    names, st.floats(0, 1), st.floats(-1e6, 1e6), st.integers(1, 10**6),
    st.dictionaries(names, st.one_of(names, st.floats(-1, 1), st.integers(-5, 5), st.none()), max_size=5),
    st.tuples(st.integers(1, 10), st.sampled_from(["list", "dict"])).map(lambda a: _nested(*a)),
    st.sampled_from(["2026-01-01T00:00:00+00:00", "1970-01-01T00:00:00", "9998-12-31T23:59:59+00:00"]),
)
values = st.one_of(
    leaves,
    plausible,
    plausible,
    st.lists(leaves, max_size=4),
    st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(KEYS)), leaves, max_size=4),
    st.tuples(st.one_of(st.integers(1, 100_000), st.sampled_from([9, 50, 300, 900, 990, 2000])),
              st.sampled_from(["list", "dict"])).map(lambda a: f"{RAW}deep:{a[0]}:{a[1]}"),
    st.integers(1000, 100_000).map(lambda n: [0.5] * n),
)


@st.composite
def mutated(draw, base: dict, max_steps: int = 4) -> str:
    """``base`` with up to ``max_steps`` mutations, as JSON text (raw numbers written as they are)."""
    data = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, max_steps))):
        parent, key = _pick(draw, data)
        if parent is None:
            continue
        operation = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "double", "borrow",
                                          "deep"]))
        if operation == "replace":
            parent[key] = draw(values)
        elif operation == "deep":  # deeper than t2reg writes; past what Python's own recursion limit allows
            depth = draw(st.sampled_from([9, 50, 300, 600, 900, 990, 2000, 100_000]))
            parent[key] = f"{RAW}deep:{depth}:{draw(st.sampled_from(['list', 'dict']))}"
        elif operation == "delete":
            del parent[key]
        elif operation == "add" and isinstance(parent, dict):
            parent[draw(st.one_of(st.text(max_size=8), st.sampled_from(KEYS)))] = draw(values)
        elif operation == "double" and isinstance(parent, list):
            parent.insert(key, json.loads(json.dumps(parent[key])))
        elif operation == "borrow":  # another field's value: cross-references that are plausible but wrong
            other_parent, other_key = _pick(draw, data)
            if other_parent is not None:
                parent[key] = json.loads(json.dumps(other_parent[other_key]))
    return _dumps(data)


def _pick(draw, data):
    """A (container, key) in ``data``. Places are grouped by their path with list indices left out
    (``versions.*.lineage.*.params``, ``protocols.*.spec.reported``): a group is drawn first, every group alike,
    then a place in it. So a protocol's spec or a lineage edge's params is as likely a target as a version's
    name, though a manifest holds far fewer of them."""
    groups: dict[str, list] = {}
    stack = [(data, "")]
    while stack:
        node, path = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else ()
        for key in keys:
            where = f"{path}.{key if isinstance(node, dict) else '*'}"
            places = groups.setdefault(where, [])
            places.append((node, key))
            if len(places) < 200:  # an inserted 100k-item list is a few places, not 100k
                stack.append((node[key], where))
    if not groups:
        return None, None
    # Half the time, a place a registry stores as it is given (a spec, params) or ranks by (a score's value).
    targets = sorted(g for g in groups if any(f".{t}" in g for t in TARGETS))
    chosen = draw(st.sampled_from(targets if targets and draw(st.booleans()) else sorted(groups)))
    return draw(st.sampled_from(groups[chosen]))


TARGETS = ("spec", "params", "weight", "value", "created_at", "files")


def _dumps(data) -> str:
    def default(value):
        raise TypeError(type(value))
    text = json.dumps(data, default=default)
    for raw in RAW_NUMBERS:
        text = text.replace(json.dumps(RAW + raw), raw)
    return re.sub(re.escape(json.dumps(RAW)[:-1]) + r'deep:(\d+):(\w+)"',
                  lambda m: _deep_text(int(m.group(1)), m.group(2)), text)


def _kind_of(exc: T2RegError) -> str:
    """The gist of a refusal, for hypothesis' statistics (--hypothesis-show-statistics)."""
    return re.sub(r"\[\d+\]|'[^']*'|\d+", "#", str(exc).split(":")[-1])[:60]


def _refused_cleanly(exc: T2RegError) -> None:
    message = str(exc)
    assert exc.exit_code in (3, 4, 5), f"{type(exc).__name__} (exit {exc.exit_code}): {message}"
    assert "\n" not in message and len(message) <= 1100, message[:300]


@settings(max_examples=1500, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated(json.loads(manifest().to_json())))
def test_any_mutated_manifest_parses_or_is_refused_in_one_line(text):
    try:
        parsed = parse_manifest(text)
    except InvalidInputError as exc:
        _refused_cleanly(exc)
        event(f"refused: {_kind_of(exc)}")
        return
    event("accepted")
    assert parse_manifest(parsed.to_json()) == parsed  # what was taken is what t2reg itself would write


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A real bundle (a mixture with its parent and a transfer, scores under a measured and a hand-reported
    protocol, per-question results, tags, an alias), and its manifest as JSON data."""
    from t2reg.registry import Registry
    from t2reg.settings import load_settings

    folder = tmp_path_factory.mktemp("fuzz-source")
    with Registry(load_settings(home=folder / "home"), create=True) as source:
        source.export_bundle(history(source, folder), folder / "bundle", with_lineage=True)
    return folder / "bundle", json.loads((folder / "bundle" / "t2reg.json").read_text())


def _cli(registry, *args: str) -> tuple[int, str]:
    """A t2reg command against ``registry``, in this process: its exit code and what it wrote to stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _run(["--home", str(registry.settings.home), "--db", registry.settings.database_url, *args], False)
    return code, err.getvalue()


# The (task, metric, protocol) rankings `best` has read back, per registry: a version imported again keeps
# every score earlier examples gave it, and reading all of them again made the test quadratic (3,224 `best`
# runs for 54 accepted examples); each is read once, after the import that brought it.
_RANKED: dict[str, set[tuple[str, str, str]]] = {}


def _every_read_works(registry, done, folder) -> None:
    for args in (["list"], ["list", "--json", "--all-versions"], ["protocols"], ["protocols", "--json"]):
        code, err = _cli(registry, *args)
        assert code == 0, (args, err)
    for ref in done.refs.values():
        for args in (["show", ref], ["show", ref, "--json"]):
            code, err = _cli(registry, *args)
            assert code == 0, (args, err)
    ranked = _RANKED.setdefault(registry.settings.database_url, set())
    scores = {(s.task, s.metric, s.protocol) for ref in done.refs.values() for s in registry.get(ref).evaluations}
    for task, metric, protocol in sorted(scores - ranked):
        args = ["best", "--task", task, "--metric", metric, "--protocol", protocol]
        assert _cli(registry, *args)[0] == 0 and _cli(registry, *args[:-2])[0] == 0, args
        ranked.add((task, metric, protocol))
    code, err = _cli(registry, "bundle", "export", done.root, "--out", str(folder / "again"), "--with-lineage")
    assert code == 0, err
    protocols_of_root = sorted({e.protocol for e in registry.get(done.root).evaluations})
    if protocols_of_root:  # compare reads the stored spec; without model weights it stops after that, typed
        code, err = _cli(registry, "compare", done.root, done.root, "--protocol", protocols_of_root[0])
        assert code in (0, 3, 4, 5) and "internal error" not in err, err


def _import_changes_nothing_or_reads_work(registry, tmp_path, exported, text) -> str:
    bundle, _ = exported
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    shutil.copytree(bundle, folder / "bundle")
    (folder / "bundle" / "t2reg.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    before = snapshot(registry)
    try:
        done = registry.import_bundle(folder / "bundle")
    except T2RegError as exc:
        _refused_cleanly(exc)
        assert snapshot(registry) == before, str(exc)
        return "refused"
    _every_read_works(registry, done, folder)
    return "accepted"


REGISTRY_FUZZ = dict(deadline=None, database=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.data_too_large])


def _for_task(base: dict, task: str) -> dict:
    """``base`` with its task renamed (the measured protocol's id recomputed): each example brings protocols
    the shared registry has not seen, so none is kept from an earlier example in place of the bundle's."""
    data = json.loads(json.dumps(base).replace('"gsm8k"', json.dumps(task)).replace('"reported:gsm8k"',
                                                                                 json.dumps(f"reported:{task}")))
    for protocol in data["protocols"]:
        if protocol["id"] == PROTOCOL.id:
            fresh = Protocol.from_dict(protocol["spec"]).id
            for version in data["versions"]:
                for score in version["evaluations"]:
                    score["protocol"] = fresh if score["protocol"] == PROTOCOL.id else score["protocol"]
            protocol["id"] = protocol["spec"]["id"] = fresh
    return data


def _fuzz_import(registry, tmp_path, exported, data) -> None:
    task = f"gsm8k-{data.draw(st.integers(0, 10**9))}"
    text = data.draw(mutated(_for_task(exported[1], task), max_steps=2))
    event(_import_changes_nothing_or_reads_work(registry, tmp_path, exported, text))


# One registry takes every example in turn, so later ones meet what earlier ones stored. Derandomized: the same
# examples on every run (on SQLite, 300: they include a hand-reported protocol without its flag, which t2reg
# before issue 28 imported and `t2reg protocols` then failed on; PostgreSQL runs fewer, being slower, and shares
# every check above the database).
@pytest.mark.parametrize("backend", ["sqlite"])
@settings(max_examples=300, **REGISTRY_FUZZ)
@given(data=st.data())
def test_a_mutated_bundle_imports_and_reads_back_or_changes_nothing(registry, tmp_path, exported, data):
    _fuzz_import(registry, tmp_path, exported, data)


@pytest.mark.parametrize("backend", ["postgres"])
@settings(max_examples=120, **REGISTRY_FUZZ)
@given(data=st.data())
def test_a_mutated_bundle_imports_into_postgresql_and_reads_back_or_changes_nothing(registry, tmp_path, exported,
                                                                                    data):
    _fuzz_import(registry, tmp_path, exported, data)
