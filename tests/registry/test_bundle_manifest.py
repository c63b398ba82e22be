"""t2reg.json parsed strictly: a manifest written by t2reg reads back equal; anything else is one clear error."""

import json

import pytest

from t2reg.errors import InvalidInputError
from t2reg.registry.bundles.manifest import (
    BundleEvaluation,
    BundleFile,
    BundleLineage,
    BundleModel,
    BundleProtocol,
    BundleVersion,
    FileKind,
    Manifest,
    parse_manifest,
)
from t2reg.vocabulary import Relation, Source

A, B, R = "a" * 64, "b" * 64, "c" * 64


def manifest() -> Manifest:
    parent = BundleVersion("p:1", "p", "m", "gsm8k", "", Source.NATIVE, A, 10)
    child = BundleVersion(
        "c:2", "c", "m", "gsm8k", "two\nlines", Source.ADAPTED, B, 12, tags={"seed": "3"}, aliases=("prod",),
        evaluations=(BundleEvaluation("gsm8k", "accuracy", 0.5, "test", 2, "eval", "reported:gsm8k", R,
                                      "2026-01-01T00:00:00+00:00"),),
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
