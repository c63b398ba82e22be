"""A version's lineage graph: ancestors whatever their status, live descendants, the publishing job, the
walk's limits, and a cost in queries that does not grow with the number of versions it holds."""

from t2reg.enums import Relation, Source
from t2reg.registry.entities import Lineage
from tests.helpers.experts import make_expert, write
from tests.helpers.queries import statements

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _publisher(registry, tmp_path):
    shapes = registry.model_shapes("smollm2-135m")
    count = iter(range(10_000))

    def publish(name, *parents, relation=Relation.TRANSFERRED_FROM, weight=None, tags=None):
        i = next(count)
        file = write(make_expert(shapes, SMOL, seed=i), tmp_path / f"e{i}.safetensors")
        lineage = [Lineage(p, relation, weight, {"seed": i}) for p in parents]
        return registry.publish(file, name=name, task="arc-easy", lineage=lineage, tags=tags or {}).ref

    return publish


def _family(registry, tmp_path, children):
    publish = _publisher(registry, tmp_path)
    grand = publish("grand")
    parent = publish("parent", grand)
    other = publish("other")
    root = publish("root", parent, other, relation=Relation.MIXTURE_COMPONENT, weight=0.5, tags={"job": "7"})
    made = [publish(f"child{i}", root) for i in range(children)]
    grandchild = publish("grandchild", made[0])
    return publish, {"grand": grand, "parent": parent, "other": other, "root": root, "made": made,
                     "grandchild": grandchild}


def test_the_graph_holds_both_directions_with_depths_links_and_the_job(registry, tmp_path):
    _, family = _family(registry, tmp_path, children=3)
    registry.delete(family["grand"])  # a deleted ancestor is still where the root came from
    registry.delete(family["made"][2])  # a deleted descendant is not drawn
    graph = registry.lineage_graph(family["root"])

    depth = {v.ref: v.depth for v in graph.versions}
    assert graph.root == family["root"] == graph.versions[0].ref
    assert depth == {family["root"]: 0, family["parent"]: -1, family["other"]: -1, family["grand"]: -2,
                     family["made"][0]: 1, family["made"][1]: 1, family["grandchild"]: 2}
    links = {(link.parent, link.child): link for link in graph.links}
    assert set(links) == {(family["parent"], family["root"]), (family["other"], family["root"]),
                          (family["grand"], family["parent"]), (family["root"], family["made"][0]),
                          (family["root"], family["made"][1]), (family["made"][0], family["grandchild"])}
    mixed = links[(family["other"], family["root"])]
    assert (mixed.relation, mixed.weight) == (Relation.MIXTURE_COMPONENT, 0.5)
    assert isinstance(mixed.params["seed"], int)
    root = graph.versions[0]
    assert (root.job, root.source, root.model) == (7, Source.NATIVE, SMOL)
    assert all(v.job is None for v in graph.versions[1:])


def test_the_walk_stops_at_its_depths_and_its_limit(registry, tmp_path):
    _, family = _family(registry, tmp_path, children=4)
    shallow = registry.lineage_graph(family["root"], up=1, down=1)
    assert {v.ref for v in shallow.versions} == {family["root"], family["parent"], family["other"], *family["made"]}
    assert all(link.parent != family["grand"] and link.child != family["grandchild"] for link in shallow.links)

    small = registry.lineage_graph(family["root"], limit=4)
    drawn = {v.ref for v in small.versions}
    assert len(drawn) == 4 and family["root"] in drawn
    assert {family["parent"], family["other"]} <= drawn  # the nearest generation first
    assert all(link.parent in drawn and link.child in drawn for link in small.links)


def test_a_graph_costs_the_same_queries_however_many_versions_it_holds(registry, tmp_path):
    publish, family = _family(registry, tmp_path, children=2)
    with statements(registry) as few:
        before = registry.lineage_graph(family["root"])
    for i in range(12):
        publish(f"more{i}", family["root"] if i % 2 else family["made"][1])
    with statements(registry) as many:
        after = registry.lineage_graph(family["root"])
    assert len(after.versions) == len(before.versions) + 12
    selects = [s for s in many if s.lstrip().upper().startswith("SELECT")]
    assert len(many) == len(few) and len(selects) <= 4 + 4 + 2 + 1  # resolve, 4 up, 2 down, the names

