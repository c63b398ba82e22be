"""The words the data model is made of: where an expert came from, how versions relate,
what state a version or a job is in.

Each is a ``str`` enum, so a member compares equal to the text stored in the
database and the expert file (``Source.NATIVE == "native"``) and serialises as
that text.
"""

from __future__ import annotations

from enum import Enum

from t2reg.errors import InvalidInputError, shown


class Word(str, Enum):
    """A member that prints as its value (``str(Source.NATIVE) == "native"``)."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)

    @classmethod
    def parse(cls, text: str, what: str):
        """The member spelled ``text``, or an error listing the choices."""
        try:
            return cls(text)
        except ValueError:
            raise InvalidInputError(f"unknown {what} {shown(text)}; choose from {', '.join(cls.values())}") from None


class Source(Word):
    """How an expert version came to be (``provenance.source`` in the file, ``source`` in the row)."""

    NATIVE = "native"  # trained on its own base model
    TRANSFERRED = "transferred"  # carried from another base model in canonical order
    TRANSFERRED_SHUFFLED = "transferred-shuffled"  # the same, each vector permuted: the control
    ADAPTED = "adapted"  # a few-shot mixture of other experts
    IMPORTED = "imported"  # converted from the reference code's files
    CONTROL = "control"  # made from another expert to test it (rescaled, sign-flipped, a random direction): not for use


class Relation(Word):
    """What a lineage edge says about a child version and its parent."""

    TRANSFERRED_FROM = "transferred_from"
    MIXTURE_COMPONENT = "mixture_component"
    TRAINED_FROM = "trained_from"
    CONTROL_OF = "control_of"  # a control made from the parent (see t2reg.transfer.controls)


class ListSort(Word):
    """The columns a page of the expert listing can be sorted by (:meth:`t2reg.registry.Registry.list_page`)."""

    NAME = "name"
    MODEL = "model"
    TASK = "task"
    SOURCE = "source"
    SCORE = "score"  # the newest score under the expert's task's default protocol (what ``best`` ranks)
    CREATED = "created"


class MixSpace(Word):
    """Where a mixture of experts is formed (see t2reg.adaptation.patching.mixing)."""

    Z = "z"  # z' = sum alpha_k z_k: convex after renormalisation, it can only shrink an expert
    LOGITS = "logits"  # z' = sigmoid(sum alpha_k logit z_k), as the reference code mixes: it extrapolates
    STRENGTH = "strength"  # the z mixture with its effect scaled by a searched strength s


class TransferMethod(Word):
    """How an expert is carried to another base model (``t2reg transfer --method``)."""

    RANK = "rank"  # z resampled along canonical singular-value order: no data, same-family copies only
    PROJECTION = "projection"  # the expert's effect mapped through what both models' matrices do on shared text
    DISTILL = "distill"  # the target's z trained to move its answers as the expert moves the source's (no labels)


class Checkpointing(Word):
    """How a distillation picks the checkpoint it publishes, on held-out stems (no label read)."""

    AGREEMENT = "agreement"  # the iteration whose pick agrees with the teacher's most often
    KL = "kl"  # the lowest KL to the teacher (training's objective) among iterations that agree with it at
    # least as often as the target alone does


class Strategy(Word):
    """How two-pass routing's first pass picks a prompt's expert (recorded in a protocol's ``routing``)."""

    PROMPT = "prompt"  # the base model names the category in \\boxed{}
    CLASSIFIER = "classifier"  # the dispatch expert scores each category's name
    FIXED = "fixed"  # one expert for everything (spelled fixed:REF)


class VersionStatus(Word):
    LIVE = "live"
    DELETED = "deleted"  # hidden from listings; its file is kept
    PURGED = "purged"  # deleted and past gc's grace period: its file was freed, its number is still taken


class JobStatus(Word):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class BlobStoreKind(Word):
    """Where a registry keeps its blobs (expert files, per-question results)."""

    FILES = "files"  # a content-addressed folder (T2REG_BLOB_ROOT), possibly shared between registries
    DATABASE = "database"  # a table of the registry's own database: whoever reaches the database reaches them
