"""Scoring generated code: the verdict is decided here, never inside the program's process.

A program used to run together with its tests, and pass when the tests ran to
their end; anything in the same interpreter as the tests could forge that (read
the harness's frame, swallow the failing assertion's exception, return an
object whose ``__eq__`` always says yes). Now:

1. The problem's tests become checks (:mod:`checks`), or the problem is
   refused (:class:`UncheckableTestsError`).
2. The reference solution runs once, in its own sandbox, with the test code;
   it reports each probe's value and each target's. Those values must satisfy
   every check as the test states it, or the problem is refused. They are
   kept in memory for the life of the process, by a hash of the reference, the
   tests and the limits.
3. The candidate runs in another sandbox: its code, the test statements and
   the probes (the calls the assertions make), nothing of the expected values.
   It reports one value per probe (:mod:`harness`).
4. Here, the report is decoded strictly (:mod:`values`: builtin data only, an
   object of the program's cannot cross) and each check is evaluated on the
   decoded values: equal to the reference's value, or the assertion's relation
   with its target (``isclose``, an absolute tolerance, ``not``, ``is None``).
   Nothing else the run says counts: not its exit status, not its output. A
   report that is not exactly one value per probe fails every check; a run
   that timed out or passed its output cap fails.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass, replace

from t2reg.adaptation.tasks.checks import Check, Relation, TestPlan, Transform, plan_tests
from t2reg.adaptation.tasks.datasets import Example
from t2reg.adaptation.tasks.sandbox import Limits, RunResult, run_probes
from t2reg.adaptation.tasks.values import MAX_HASHED, BadValue, Raised, read_report
from t2reg.errors import UncheckableTestsError

REFERENCE_SLACK = 6  # the reference run's time limits, as a multiple of the candidate's: it runs once


@dataclass(frozen=True)
class Expectation:
    """What one check's value is held against: the reference's value (transformed) and the target's."""

    reference: object
    target: object = None


@dataclass(frozen=True)
class Verdict:
    passed: bool
    failed: tuple[int, ...]  # the checks that did not hold (indices into the plan's checks)
    why: str  # for people: the first failure
    run: RunResult


def judge(example: Example, program: str, limits: Limits = Limits(), isolation: str | None = None) -> Verdict:
    """Whether ``program`` passes ``example``'s tests, decided outside its process (see the module docstring).

    :class:`UncheckableTestsError` for a problem whose tests cannot be judged so; :class:`SandboxStartError`
    when the machine could not start a run (then nothing is known about the program).
    """
    plan = plan_tests(example.tests, example.solution, example.id)
    expected = expectations(example, plan, limits, isolation)
    probed = run_probes(program, plan.candidate_steps(), limits, isolation)
    checks = plan.checks
    everything = tuple(range(len(checks)))
    if probed.run.timed_out or probed.run.output_exceeded:
        why = "timed out" if probed.run.timed_out else "passed its output cap"
        return Verdict(False, everything, f"the program {why}", probed.run)
    try:
        values = read_report(probed.report, len(checks))
    except BadValue as exc:
        return Verdict(False, everything, f"the program's report is not one value per check: {exc}", probed.run)
    failed = [i for i, (check, value, expectation) in enumerate(zip(checks, values, expected))
              if not _holds_for_candidate(check, value, expectation)]
    why = _describe(checks[failed[0]], values[failed[0]]) if failed else ""
    return Verdict(not failed, tuple(failed), why, probed.run)


# -- the expected values ------------------------------------------------------------------------------------------

_cache: dict[str, tuple[Expectation, ...] | str] = {}  # the expectations, or why the problem is refused
_cache_lock = threading.Lock()


def expectations(example: Example, plan: TestPlan, limits: Limits = Limits(),
                 isolation: str | None = None) -> tuple[Expectation, ...]:
    """Each check's expectation, from one sandboxed run of the reference solution (cached for the process)."""
    reference_limits = replace(limits, wall_seconds=limits.wall_seconds * REFERENCE_SLACK,
                               cpu_seconds=limits.cpu_seconds * REFERENCE_SLACK)
    key = hashlib.sha256(json.dumps([example.solution, plan.reference_steps(), repr(reference_limits)]).encode())
    with _cache_lock:
        known = _cache.get(key.hexdigest())
    if known is None:
        try:
            known = _reference(example, plan, reference_limits, isolation)
        except UncheckableTestsError as exc:
            known = str(exc)
        with _cache_lock:
            _cache[key.hexdigest()] = known
    if isinstance(known, str):
        raise UncheckableTestsError(known)
    return known


def _reference(example: Example, plan: TestPlan, limits: Limits, isolation: str | None) -> tuple[Expectation, ...]:
    steps = plan.reference_steps()
    probed = run_probes(example.solution, steps, limits, isolation)

    def refuse(why: str) -> UncheckableTestsError:
        return UncheckableTestsError(f"{example.id}: cannot judge answers: the reference solution {why}")

    if probed.run.timed_out:
        raise refuse(f"did not finish its tests within {limits.wall_seconds:g} s")
    lines = probed.run.stderr.strip().splitlines()
    last = lines[-1][:300] if lines else "no message"
    try:
        values = iter(read_report(probed.report, sum(kind == "value" for kind, _ in steps)))
    except BadValue as exc:
        raise refuse(f"stopped or reported badly ({exc}; {last})") from None
    if probed.run.returncode != 0 or probed.run.output_exceeded:  # its own run: its exit status is trusted
        raise refuse(f"ended with status {probed.run.returncode} ({last})")
    found = []
    for check in plan.checks:
        raw = next(values)
        target = next(values) if check.target is not None else None
        value = _transformed(check, raw)
        if isinstance(value, Raised) or isinstance(target, Raised):
            raise refuse(f"raised on line {check.line} ({(value if isinstance(value, Raised) else target).reason})")
        if not _holds(check, value, target):
            raise refuse(f"fails its own test on line {check.line} ({_show(value)})")
        found.append(Expectation(value, target))
    return tuple(found)


# -- comparing, on decoded values only -------------------------------------------------------------------------------

def _holds_for_candidate(check: Check, value: object, expectation: Expectation) -> bool:
    value = _transformed(check, value)
    if isinstance(value, Raised):
        return False
    against = expectation.reference if check.relation == Relation.EQUAL else expectation.target
    return _holds(check, value, against)


def _holds(check: Check, value: object, other: object) -> bool:
    """Whether ``value`` relates to ``other`` as ``check`` says; builtin data on both sides, so nothing of the
    program's runs. An operation the values do not support (``abs`` of a list) is a failed check."""
    relation = check.relation
    try:
        if relation == Relation.EQUAL:
            return bool(value == other)
        if relation == Relation.NOT_EQUAL:
            return bool(value != other)
        if relation in (Relation.TRUE, Relation.FALSE):
            return bool(value) == (relation == Relation.TRUE)
        if relation in (Relation.IS, Relation.IS_NOT):
            return (value is other) == (relation == Relation.IS)
        if not (_is_number(value) and _is_number(other)):
            return False
        if relation == Relation.CLOSE:
            return math.isclose(value, other, rel_tol=check.rel_tol, abs_tol=check.abs_tol)  # type: ignore[arg-type]
        distance = abs(value - other)  # type: ignore[operator]
        return distance < check.bound if check.strict else distance <= check.bound
    except (TypeError, ValueError, OverflowError):
        return False


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, complex))  # bool included, as in Python's arithmetic


_BUILTINS = {"set": set, "frozenset": frozenset, "sorted": sorted, "tuple": tuple, "list": list, "len": len,
             "int": int, "float": float, "str": str, "abs": abs, "round": round}


def _transformed(check: Check, value: object) -> object:
    """The decoded value with the assertion's builtins applied; :class:`Raised` where Python would raise."""
    if isinstance(value, Raised):
        return value
    for transform in check.transforms:
        try:
            value = _apply(transform, value)
        except (TypeError, ValueError, OverflowError) as exc:
            return Raised(f"{transform.name}() raised {type(exc).__name__}")
    return value


def _apply(transform: Transform, value: object) -> object:
    if transform.name in ("set", "frozenset") and isinstance(value, (list, tuple, str, bytes)) \
            and len(value) > MAX_HASHED:
        # The decoder caps what it hashes (predictable integer hashes make collisions cheap); so does this.
        raise ValueError(f"more than {MAX_HASHED} members to hash")
    return _BUILTINS[transform.name](value, *transform.args)


def _describe(check: Check, value: object) -> str:
    if isinstance(value, Raised):
        return f"line {check.line}: {value.reason}"
    return f"line {check.line}: `{check.probe[:80]}` gave {_show(value)}"


def _show(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's conversion limit (4300 digits)
        return f"a {type(value).__name__} too large to print"
    return text if len(text) <= 120 else text[:117] + "..."
