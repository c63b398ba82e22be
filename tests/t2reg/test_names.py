"""One table mechanism and one error for every kind of named thing: an unknown name exits the same way whether
it names a task, an optimizer, a backend, a job kind or an architecture."""

import copy

import pytest

from t2reg.adaptation.backends import BACKENDS
from t2reg.adaptation.jobs.runner import job_kind
from t2reg.adaptation.search.base import OPTIMIZERS
from t2reg.adaptation.tasks.base import TASKS
from t2reg.architectures import ARCHITECTURES
from t2reg.errors import NotFoundError, UnknownNameError, UnsupportedArchitectureError
from t2reg.names import Names


def test_a_table_lists_sorted_names_and_finds_entries():
    table = Names("colour")
    table.add("red", 1)
    table.add("blue", 2)
    assert table.names() == ["blue", "red"] and list(table) == [2, 1] and "red" in table and "green" not in table
    assert table.get("red") == 1 and table.find("green") is None
    assert [name for name, _ in table.items()] == ["red", "blue"]  # the order they were added
    assert table.remove("red") == 1 and table.names() == ["blue"]
    with pytest.raises(UnknownNameError):
        table.remove("red")


def test_an_unknown_name_carries_what_was_asked_and_what_exists():
    table = Names("colour")
    table.add("red", 1)
    with pytest.raises(UnknownNameError) as info:
        table.get("green")
    assert str(info.value) == "unknown colour 'green'; choose from red" and info.value.exit_code == 3
    assert (info.value.kind, info.value.name, info.value.known) == ("colour", "green", ("red",))
    with pytest.raises(UnknownNameError) as info:
        table.check("green", option="colour_name")
    assert info.value.render(lambda o: "--" + o.replace("_", "-")) == "unknown --colour-name 'green'; choose from red"
    rebuilt = copy.deepcopy(info.value)  # as Ray rebuilds it in another process
    assert (rebuilt.kind, rebuilt.name, rebuilt.known, rebuilt.options) == ("colour", "green", ("red",),
                                                                            ("colour_name",))


@pytest.mark.parametrize("lookup", [lambda: TASKS.get("nope"), lambda: OPTIMIZERS.get("nope"),
                                    lambda: BACKENDS.get("nope"), lambda: job_kind("nope"),
                                    lambda: ARCHITECTURES.get("nope")],
                         ids=["task", "optimizer", "backend", "job kind", "architecture"])
def test_every_kind_of_name_fails_the_same_way(lookup):
    with pytest.raises(UnknownNameError) as info:
        lookup()
    assert isinstance(info.value, NotFoundError) and info.value.exit_code == 3 and info.value.name == "nope"
    assert info.value.known and f"unknown {info.value.kind} 'nope'; choose from " in str(info.value)


def test_an_unsupported_architecture_is_an_unknown_name_and_still_a_value_error():
    with pytest.raises(UnsupportedArchitectureError) as info:
        ARCHITECTURES.get("MambaForCausalLM")
    assert isinstance(info.value, UnknownNameError) and isinstance(info.value, ValueError)
    assert "LlamaForCausalLM" in info.value.known
