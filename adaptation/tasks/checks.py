"""A code problem's tests rewritten as checks t2reg judges itself, outside the program's process.

Each ``assert`` of a test becomes a :class:`Check`: a *probe* (the call of the
program the assertion is about, e.g. ``min_cost([[1, 2]], 1, 1)``), evaluated
in the sandbox where the program runs, plus what to do with the value it
reports, done by t2reg on the decoded value: *transforms* (the plain builtins
the assertion wraps around the call, e.g. ``set(...)`` or ``tuple(...)``) and a
*relation* with the assertion's other side (the *target*, task data, evaluated
in the reference run). The forms understood:

* ``assert CALL == TARGET`` (either way round), ``!=``;
* ``assert CALL`` and ``assert not CALL``;
* ``assert CALL is True`` / ``False`` / ``None`` (and ``is not``);
* ``assert math.isclose(CALL, TARGET, rel_tol=..., abs_tol=...)``;
* ``assert abs(CALL - TARGET) < TOL`` (``<=``, ``math.fabs``, either way round);

where ``CALL`` may sit inside ``set``, ``frozenset``, ``sorted``, ``tuple``,
``list``, ``len``, ``int``, ``float``, ``str``, ``abs`` or ``round(..., N)``.
Statements between assertions (imports, assignments, MBPP's setup code) run in
both sandboxes as they are; HumanEval's ``def check(candidate): ...`` followed
by ``check(ENTRY)`` is unrolled. Anything else (a loop or branch around an
assertion, an assertion whose relation runs code of the program's, like
``assert f(x) - 5 == 0`` or ``assert isinstance(f(x), int)``) is refused with
:class:`UncheckableTestsError`: its outcome would be decided inside the
program's interpreter.

"The program" is the set of names the reference solution defines at top level,
the check function's parameter, and every name test code binds from them.
"""

from __future__ import annotations

import ast
import functools
import math
import warnings
from dataclasses import dataclass

from t2reg.errors import UncheckableTestsError
from t2reg.enums import Word

TRANSFORMS = ("set", "frozenset", "sorted", "tuple", "list", "len", "int", "float", "str", "abs", "round")
_SIMPLE = (ast.Import, ast.ImportFrom, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Pass,
           ast.FunctionDef, ast.ClassDef)


class Relation(Word):
    """How a check's value must relate to what it is compared with."""

    EQUAL = "equal"  # == the reference solution's value (which == the target)
    NOT_EQUAL = "not-equal"  # != the target
    TRUE = "true"  # truthy
    FALSE = "false"  # falsy
    IS = "is"  # is the target (None, True or False)
    IS_NOT = "is-not"
    CLOSE = "close"  # math.isclose(value, target, rel_tol, abs_tol)
    WITHIN = "within"  # abs(value - target) < bound (<= when not strict)


@dataclass(frozen=True)
class Transform:
    """A plain builtin applied to the decoded value, with constant extra arguments (``round``'s digits)."""

    name: str
    args: tuple[int, ...] = ()


@dataclass(frozen=True)
class Check:
    probe: str  # expression evaluated in the sandbox: the program's value
    relation: Relation
    line: int
    transforms: tuple[Transform, ...] = ()  # applied in order, innermost first
    target: str | None = None  # the other side (task data), evaluated in the reference run
    rel_tol: float = 1e-9
    abs_tol: float = 0.0
    bound: float = 0.0
    strict: bool = True


@dataclass(frozen=True)
class _Step:
    kind: str  # run | reference (run in the reference's sandbox only) | check
    source: str = ""
    check: Check | None = None


@dataclass(frozen=True)
class TestPlan:
    """A problem's tests as steps: statements to run, and checks whose probes report values."""

    steps: tuple[_Step, ...]

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(s.check for s in self.steps if s.check is not None)

    def candidate_steps(self) -> list[tuple[str, str]]:
        """The candidate's run: test statements and probes, never a target or a constant assertion."""
        return [("value", s.check.probe) if s.check else ("run", s.source) for s in self.steps if s.kind != "reference"]

    def reference_steps(self) -> list[tuple[str, str]]:
        """The reference's run: everything, each probe followed by its target (if it has one)."""
        out: list[tuple[str, str]] = []
        for step in self.steps:
            if step.check is None:
                out.append(("run", step.source))
                continue
            out.append(("value", step.check.probe))
            if step.check.target is not None:
                out.append(("value", step.check.target))
        return out


@functools.lru_cache(maxsize=4096)
def plan_tests(tests: str, solution: str, problem: str = "") -> TestPlan:
    """``tests`` (asserts, MBPP style, or a HumanEval check function) as a :class:`TestPlan`; names the
    reference ``solution`` defines count as the program's. :class:`UncheckableTestsError` when they cannot be
    rewritten (``problem`` names the problem in the message)."""
    if not solution.strip():
        raise UncheckableTestsError(f"{problem}: no reference solution to take the expected values from")
    try:
        with warnings.catch_warnings():  # task data's own style ("\d" in a plain string) is not ours to flag
            warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
            module = ast.parse(tests)
            program = _defined_names(ast.parse(solution))
    except SyntaxError as exc:
        raise UncheckableTestsError(f"{problem}: its tests or reference do not parse ({exc.msg}, line {exc.lineno})") from None
    try:
        steps = _Planner(program).module(module)
    except _Refused as exc:
        raise UncheckableTestsError(f"{problem}: its tests cannot be judged outside the program (line "
                                    f"{exc.line}: {exc.why})") from None
    if not any(s.check for s in steps):
        raise UncheckableTestsError(f"{problem}: its tests assert nothing about the program")
    return TestPlan(tuple(steps))


class _Refused(Exception):
    def __init__(self, node: ast.AST, why: str) -> None:
        super().__init__(why)
        self.line = getattr(node, "lineno", 0)
        self.why = why


def _defined_names(module: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in module.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            names |= _bound(node)
    return names


def _bound(node: ast.stmt) -> set[str]:
    """Names a statement binds (an assignment to ``x.a`` or ``x[i]`` binds ``x`` for this purpose)."""
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    names = set()
    for target in targets:
        for sub in ast.walk(target) if target is not None else ():
            if isinstance(sub, ast.Name):
                names.add(sub.id)
    return names


class _Planner:
    def __init__(self, program: set[str]) -> None:
        self.program = set(program)
        self.param: str | None = None  # the check function's parameter: the candidate itself

    def uses(self, node: ast.AST) -> bool:
        return any(isinstance(n, ast.Name) and n.id in self.program for n in ast.walk(node))

    def module(self, module: ast.Module) -> list[_Step]:
        checkers = {n.name: n for n in module.body if isinstance(n, ast.FunctionDef) and _is_checker(n)}
        steps: list[_Step] = []
        for node in module.body:
            if isinstance(node, ast.FunctionDef) and node.name in checkers:
                continue
            call = _checker_call(node, checkers)
            if call is not None:
                steps += self.unroll(checkers[call.func.id], call.args[0])  # type: ignore[union-attr]
            else:
                steps.append(self.statement(node))
        return steps

    def unroll(self, checker: ast.FunctionDef, entry: ast.expr) -> list[_Step]:
        param = self.param = checker.args.args[0].arg
        self.program.add(param)
        steps = [_Step("run", f"{param} = {ast.unparse(entry)}")]
        return steps + [self.statement(node) for node in checker.body]

    def statement(self, node: ast.stmt) -> _Step:
        if isinstance(node, ast.Assert):
            if not self.uses(node.test):
                return _Step("reference", ast.unparse(node))  # about task data only: the reference run checks it
            return _Step("check", check=self.check(node.test))
        if not isinstance(node, _SIMPLE):
            raise _Refused(node, f"a {type(node).__name__.lower()} statement among the assertions")
        inner = next((n for n in ast.walk(node) if isinstance(n, ast.Assert)), None)
        if inner is not None:
            raise _Refused(inner, "an assertion inside a definition")
        if self.uses(node):
            self.program |= _bound(node)
        return _Step("run", ast.unparse(node))

    def check(self, test: ast.expr) -> Check:
        line = test.lineno
        if isinstance(test, ast.Compare):
            return self.compare(test, line)
        if isinstance(test, ast.Call) and _names(test.func, "isclose", "math.isclose") and not self.uses(test.func):
            return self.isclose(test, line)
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            probe, transforms = self.probe(test.operand)
            return Check(probe, Relation.FALSE, line, transforms)
        probe, transforms = self.probe(test)
        return Check(probe, Relation.TRUE, line, transforms)

    def compare(self, test: ast.Compare, line: int) -> Check:
        if len(test.ops) != 1:
            raise _Refused(test, "a chained comparison")
        op, left, right = test.ops[0], test.left, test.comparators[0]
        if isinstance(op, (ast.Eq, ast.NotEq)):
            probe_side, target = self.sides(test, left, right, isinstance(op, ast.Eq))
            probe, transforms = self.probe(probe_side)
            relation = Relation.EQUAL if isinstance(op, ast.Eq) else Relation.NOT_EQUAL
            return Check(probe, relation, line, transforms, ast.unparse(target))
        if isinstance(op, (ast.Is, ast.IsNot)):
            probe_side, target = self.sides(test, left, right)
            if not (isinstance(target, ast.Constant) and any(target.value is c for c in (None, True, False))):
                raise _Refused(test, "`is` with something other than None, True or False")
            probe, transforms = self.probe(probe_side)
            relation = Relation.IS if isinstance(op, ast.Is) else Relation.IS_NOT
            return Check(probe, relation, line, transforms, ast.unparse(target))
        if isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)):
            difference, bound = (left, right) if isinstance(op, (ast.Lt, ast.LtE)) else (right, left)
            return self.within(test, difference, bound, strict=isinstance(op, (ast.Lt, ast.Gt)), line=line)
        raise _Refused(test, f"a comparison with {type(op).__name__}")

    def sides(self, node: ast.AST, left: ast.expr, right: ast.expr,
              equal: bool = False) -> tuple[ast.expr, ast.expr]:
        """(the side about the program, the other); refused unless exactly one side is about the program.

        One exception, HumanEval/33's ``candidate(x) == sort_third(x)``: an equality with the candidate on one
        side and other functions of the program's on the other. The other side is taken from the reference
        run, which makes it the reference's value: what the assertion means (as written in one interpreter it
        compared the candidate with itself)."""
        if self.uses(left) != self.uses(right):
            return (left, right) if self.uses(left) else (right, left)
        mentions = [any(isinstance(n, ast.Name) and n.id == self.param for n in ast.walk(side))
                    for side in (left, right)]
        if equal and self.uses(left) and self.param is not None and mentions.count(True) == 1:
            return (left, right) if mentions[0] else (right, left)
        raise _Refused(node, "both sides of the comparison involve the program" if self.uses(left)
                       else "neither side of the comparison involves the program")

    def within(self, test: ast.Compare, difference: ast.expr, bound: ast.expr, strict: bool, line: int) -> Check:
        if not (isinstance(difference, ast.Call) and _names(difference.func, "abs", "math.fabs")
                and len(difference.args) == 1 and not difference.keywords and not self.uses(difference.func)
                and isinstance(difference.args[0], ast.BinOp) and isinstance(difference.args[0].op, ast.Sub)):
            raise _Refused(test, "an ordering comparison that is not abs(VALUE - TARGET) < TOLERANCE")
        sub = difference.args[0]
        probe_side, target = self.sides(test, sub.left, sub.right)
        probe, transforms = self.probe(probe_side)
        return Check(probe, Relation.WITHIN, line, transforms, ast.unparse(target), bound=_number(bound, test),
                     strict=strict)

    def isclose(self, test: ast.Call, line: int) -> Check:
        if len(test.args) != 2 or any(k.arg not in ("rel_tol", "abs_tol") for k in test.keywords):
            raise _Refused(test, "isclose with other than two values, rel_tol and abs_tol")
        probe_side, target = self.sides(test, test.args[0], test.args[1])
        probe, transforms = self.probe(probe_side)
        tolerances = {k.arg: _number(k.value, test) for k in test.keywords}
        return Check(probe, Relation.CLOSE, line, transforms, ast.unparse(target),
                     rel_tol=tolerances.get("rel_tol", 1e-9), abs_tol=tolerances.get("abs_tol", 0.0))

    def probe(self, node: ast.expr) -> tuple[str, tuple[Transform, ...]]:
        """The program's call inside ``node``, and the builtins wrapped around it (applied innermost first)."""
        transforms: list[Transform] = []
        while (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in TRANSFORMS
               and node.func.id not in self.program and not node.keywords and node.args
               and not isinstance(node.args[0], ast.Starred)):
            extra = [_constant_int(a, node) for a in node.args[1:]]
            if len(extra) > (1 if node.func.id == "round" else 0):
                raise _Refused(node, f"{node.func.id}() with more arguments than the value")
            transforms.append(Transform(node.func.id, tuple(extra)))
            node = node.args[0]
        about_program = (isinstance(node, ast.Name) and node.id in self.program) or (
            isinstance(node, ast.Call) and self.uses(node.func))
        if not about_program:
            raise _Refused(node, f"`{ast.unparse(node)[:80]}` computes the checked value inside the program's "
                                 "interpreter, from more than a call of the program")
        return ast.unparse(node), tuple(reversed(transforms))


def _is_checker(node: ast.FunctionDef) -> bool:
    """HumanEval's ``def check(candidate)``: one positional parameter, assertions inside."""
    args = node.args
    simple = len(args.args) == 1 and not (args.posonlyargs or args.kwonlyargs or args.vararg or args.kwarg)
    return simple and node.name == "check" and any(isinstance(n, ast.Assert) for n in ast.walk(node))


def _checker_call(node: ast.stmt, checkers: dict[str, ast.FunctionDef]) -> ast.Call | None:
    call = node.value if isinstance(node, ast.Expr) else None
    if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in checkers
            and len(call.args) == 1 and not call.keywords):
        return call
    return None


def _names(func: ast.expr, *spellings: str) -> bool:
    return ast.unparse(func) in spellings


def _number(node: ast.expr, where: ast.AST) -> float:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise _Refused(where, f"a tolerance that is not a number: {ast.unparse(node)[:80]}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _Refused(where, f"a tolerance that is not a finite, non-negative number: {value!r}")
    return float(value)


def _constant_int(node: ast.expr, where: ast.AST) -> int:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = None
    if type(value) is not int:
        raise _Refused(where, f"an argument that is not a constant integer: {ast.unparse(node)[:80]}")
    return value
