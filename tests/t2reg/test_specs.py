"""Job specs: plain data in and out, defaults in one place, unknown or missing settings refused by name."""

from dataclasses import dataclass
from typing import ClassVar

import pytest

from t2reg.errors import InvalidInputError
from t2reg.specs import JobSpec, positive
from t2reg.enums import MixSpace, TransferMethod


@dataclass(frozen=True)
class ToySpec(JobSpec):
    kind: ClassVar[str] = "toy"

    model: str
    pool: tuple[str, ...] = ()
    shots: int = 10
    name: str | None = None

    def validate(self) -> None:
        positive(self, "shots")


def test_round_trip_through_json_shapes():
    spec = ToySpec("tiny", pool=("model=a", "task=b"), shots=3)
    data = spec.to_dict()
    assert data == {"model": "tiny", "pool": ["model=a", "task=b"], "shots": 3, "name": None}
    assert ToySpec.from_dict(data) == spec  # lists come back as tuples


def test_unknown_and_missing_settings_are_named():
    with pytest.raises(InvalidInputError, match="unknown toy settings: colour, size"):
        ToySpec.from_dict({"model": "tiny", "size": 1, "colour": "red"})
    with pytest.raises(InvalidInputError, match="toy settings lack model"):
        ToySpec.from_dict({"shots": 2})


def test_defaults_come_from_the_fields():
    assert ToySpec.default("shots") == 10 and ToySpec.default("pool") == ()
    with pytest.raises(KeyError):
        ToySpec.default("model")  # required: no default


def test_positive_names_each_offending_option():
    with pytest.raises(InvalidInputError, match="shots must be at least 1") as refused:
        ToySpec("tiny", shots=0).validate()
    assert refused.value.options == ("shots",)


@dataclass(frozen=True)
class WordSpec(JobSpec):
    kind: ClassVar[str] = "words"

    space: MixSpace = MixSpace.Z
    method: TransferMethod | None = None

    def validate(self) -> None:
        if self.space not in MixSpace.values():
            raise InvalidInputError("{space} must be one of " + ", ".join(MixSpace.values()), options=["space"])


def test_an_enum_field_holds_its_member_and_travels_as_text():
    spec = WordSpec.from_dict({"space": "strength", "method": "distill"})
    assert spec.space is MixSpace.STRENGTH and spec.method is TransferMethod.DISTILL
    assert spec.to_dict() == {"space": "strength", "method": "distill"}
    assert type(spec.to_dict()["space"]) is str
    assert WordSpec("logits") == WordSpec(MixSpace.LOGITS)
    assert WordSpec.default("space") == "z" and type(WordSpec.default("space")) is str  # as a CLI default


def test_text_that_names_no_member_is_refused_by_validate():
    spec = WordSpec("sideways")
    assert spec.space == "sideways"  # left as given, for validate() to name
    with pytest.raises(InvalidInputError, match="space"):
        spec.validate()


@dataclass(frozen=True)
class RenamedSpec(JobSpec):
    kind: ClassVar[str] = "renamed"
    renamed: ClassVar[dict[str, str]] = {"batch_size": "examples_per_step"}

    examples_per_step: int = 16


def test_a_row_stored_before_a_setting_was_renamed_reads_the_new_way():
    assert RenamedSpec.from_dict({"batch_size": 8}) == RenamedSpec(8)
    assert RenamedSpec(8).to_dict() == {"examples_per_step": 8}
