"""Tests rewritten into checks: probes run beside the program, everything that decides runs in t2reg."""

import pytest

from t2reg.adaptation.tasks import datasets as ds
from t2reg.adaptation.tasks.checks import Relation, Transform, plan_tests
from t2reg.errors import UncheckableTestsError
from tests.helpers.data import require_data

SOLUTION = "def f(x):\n    return x\n\nclass Node:\n    pass\n"


def _only(tests: str, solution: str = SOLUTION):
    (check,) = plan_tests(tests, solution).checks
    return check


@pytest.mark.parametrize("test, probe, relation, transforms, target", [
    ("assert f(1) == 2", "f(1)", Relation.EQUAL, (), "2"),
    ("assert 2 == f(1)", "f(1)", Relation.EQUAL, (), "2"),
    ("assert f(1) != 2", "f(1)", Relation.NOT_EQUAL, (), "2"),
    ("assert f([1, 2])", "f([1, 2])", Relation.TRUE, (), None),
    ("assert not f([])", "f([])", Relation.FALSE, (), None),
    ("assert f(1) is None", "f(1)", Relation.IS, (), "None"),
    ("assert f(1) is not True", "f(1)", Relation.IS_NOT, (), "True"),
    ("assert set(f([1, 2])) == {1, 2}", "f([1, 2])", Relation.EQUAL, (Transform("set"),), "{1, 2}"),
    ("assert sorted(tuple(f(3))) == [3]", "f(3)", Relation.EQUAL, (Transform("tuple"), Transform("sorted")), "[3]"),
    ("assert round(f(1.2345), 2) == 1.23", "f(1.2345)", Relation.EQUAL, (Transform("round", (2,)),), "1.23"),
    ("assert (f(2)) == 2", "f(2)", Relation.EQUAL, (), "2"),
    ("assert f(f(1)) == 1", "f(f(1))", Relation.EQUAL, (), "1"),
])
def test_assertion_forms_become_probes_and_relations(test, probe, relation, transforms, target):
    check = _only(test)
    assert (check.probe, check.relation, check.transforms, check.target) == (probe, relation, transforms, target)


def test_tolerances_are_read_as_numbers():
    check = _only("import math\nassert math.isclose(f(1.0), 3.14, rel_tol=0.001)")
    assert (check.relation, check.probe, check.target, check.rel_tol, check.abs_tol) == (
        Relation.CLOSE, "f(1.0)", "3.14", 0.001, 0.0)
    check = _only("assert abs(f(1.5) - 1.5) < 1e-6")
    assert (check.relation, check.probe, check.target, check.bound, check.strict) == (
        Relation.WITHIN, "f(1.5)", "1.5", 1e-6, True)
    check = _only("assert 0.1 >= abs(2.0 - f(2))")
    assert (check.relation, check.probe, check.target, check.bound, check.strict) == (
        Relation.WITHIN, "f(2)", "2.0", 0.1, False)


def test_a_humaneval_check_function_is_unrolled_and_setup_runs_in_both_runs():
    tests = ("METADATA = {}\n\ndef check(candidate):\n    lst = [1, 2]\n    assert candidate(lst) == [1, 2]\n"
             "    assert True, 'always'\n\ncheck(f)\n")
    plan = plan_tests(tests, SOLUTION)
    assert plan.candidate_steps() == [("run", "METADATA = {}"), ("run", "candidate = f"), ("run", "lst = [1, 2]"),
                                      ("value", "candidate(lst)")]
    assert plan.reference_steps() == [("run", "METADATA = {}"), ("run", "candidate = f"), ("run", "lst = [1, 2]"),
                                      ("value", "candidate(lst)"), ("value", "[1, 2]"),
                                      ("run", "assert True, 'always'")]


def test_names_bound_from_the_program_count_as_the_program():
    plan = plan_tests("root = Node()\nroot.left = Node()\nassert f(root) == 1", SOLUTION)
    assert plan.checks[0].probe == "f(root)"
    with pytest.raises(UncheckableTestsError, match="both sides"):
        plan_tests("root = Node()\nassert f(1) == root", SOLUTION)


def test_the_candidate_never_sees_a_target():
    plan = plan_tests("assert f(1) == 123456789", SOLUTION)
    assert "123456789" not in repr(plan.candidate_steps())
    assert ("value", "123456789") in plan.reference_steps()


@pytest.mark.parametrize("tests, why", [
    ("for x in range(3):\n    assert f(x) == x", "for statement"),
    ("if True:\n    assert f(1) == 1", "if statement"),
    ("assert f(1) - 1 == 0", "inside the program's interpreter"),
    ("assert isinstance(f(1), int)", "inside the program's interpreter"),
    ("assert f(1) == f(2)", "both sides"),
    ("assert f(1) in [1, 2]", "comparison with In"),
    ("assert 0 < f(1) < 2", "chained"),
    ("assert f(1) < 2", "abs\\(VALUE - TARGET\\)"),
    ("assert abs(f(1) - 1) < x", "tolerance that is not a number"),
    ("assert f(1) is 1", "None, True or False"),
    ("assert f(1) and f(2)", "inside the program's interpreter"),
    ("def helper():\n    assert f(1) == 1\nhelper()", "inside a definition"),
    ("x = 1\nassert x == 1", "assert nothing about the program"),
    ("assert f(1 ==", "do not parse"),
])
def test_what_cannot_be_judged_outside_is_refused_with_the_reason(tests, why):
    with pytest.raises(UncheckableTestsError, match=why):
        plan_tests(tests, SOLUTION, "p/1")


def test_humaneval_33_compares_the_candidate_with_the_reference_function():
    tests = "def check(candidate):\n    assert tuple(candidate([3, 1])) == tuple(sort_third([3, 1]))\n\ncheck(sort_third)\n"
    check = _only(tests, "def sort_third(l):\n    return l\n")
    assert (check.probe, check.target, check.transforms) == ("candidate([3, 1])", "tuple(sort_third([3, 1]))",
                                                             (Transform("tuple"),))


def test_every_mbpp_problem_and_all_but_five_humaneval_problems_can_be_judged():
    data = require_data()
    mbpp = [ex for split in ("test", "train", "validation", "shots") for ex in ds.mbpp(data, split)]
    humaneval = ds.humaneval(data, "test") + ds.humaneval(data, "shots")
    refused = []
    for ex in mbpp + humaneval:
        try:
            plan_tests(ex.tests, ex.solution, ex.id)
        except UncheckableTestsError:
            refused.append(ex.id)
    assert len(mbpp) == 974 and len(humaneval) == 164
    assert sorted(refused) == ["HumanEval/32", "HumanEval/38", "HumanEval/44", "HumanEval/50", "HumanEval/53"]
