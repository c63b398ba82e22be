"""The verdict is t2reg's: what a program does inside its sandbox cannot make a wrong answer right.

Each forgery here passed when programs ran in the same interpreter as their
tests (issue 28); the real-data tests check that honest answers are still
judged as their tests would judge them.
"""

import ast
import functools
import os
import random

import pytest

from t2reg.adaptation.tasks import datasets as ds
from t2reg.adaptation.tasks import judge as judge_module
from t2reg.adaptation.tasks.builtin import code_check
from t2reg.adaptation.tasks.checks import plan_tests
from t2reg.adaptation.tasks.datasets import Example
from t2reg.adaptation.tasks.judge import judge
from t2reg.adaptation.tasks.sandbox import Limits, namespaces_plan, run_program
from t2reg.errors import IsolationUnavailableError, SandboxStartError, UncheckableTestsError
from tests.helpers.data import require_data

FAST = Limits(wall_seconds=5, cpu_seconds=5)
ADD = Example("mbpp/add", "add two numbers", "", tests="assert add(2, 3) == 5\nassert add(10, 20) == 30\n",
              entry_point="", solution="def add(a, b):\n    return a + b\n")
WRONG_ADD = "def add(a, b):\n    return a - b\n"


@pytest.fixture(autouse=True)
def isolation():
    try:
        namespaces_plan()
    except IsolationUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"namespaces isolation unavailable on CI: {exc}")
        pytest.skip(str(exc))


def _fenced(code: str) -> str:
    return f"```python\n{code}\n```"


# -- forgeries ------------------------------------------------------------------------------------------------------

FRAME_FORGERY = WRONG_ADD + """
import os, sys
try:
    _h = sys._getframe(1).f_locals  # the harness's frame: its nonce and the function reporting it
    _h["report"](_h["result_fd"], _h["nonce"])
    os._exit(0)
except Exception:
    pass
"""

ATEXIT_FORGERY = WRONG_ADD + """
import atexit, os, sys
try:
    _h = dict(sys._getframe(1).f_locals)
    def _forge():
        _h["report"](_h["result_fd"], _h["nonce"])
        os._exit(0)
    sys.excepthook = lambda *args: None  # the failing assertion's traceback, swallowed
    atexit.register(_forge)
except Exception:
    pass
"""


@pytest.mark.parametrize("forgery", [FRAME_FORGERY, ATEXIT_FORGERY], ids=["frame", "atexit-excepthook"])
def test_reporting_the_harness_nonce_does_not_pass_a_wrong_answer(forgery):
    check = code_check(FAST)
    assert check(ADD, _fenced(ADD.solution))
    assert not check(ADD, _fenced(forgery))


CLAIMS = ['{"passed": true}\\n', '{"v": true}\\n{"v": true}\\n', '{"v": 5}\\n{"v": 30}\\n{"v": 30}\\n',
          '{"v": {"always": "equal"}}\\n{"v": 30}\\n', 'ok\\n']


@pytest.mark.parametrize("claim", CLAIMS)
def test_writing_claims_on_the_report_pipe_does_not_pass_a_wrong_answer(claim):
    forgery = WRONG_ADD + f"""
import os, sys
frame = sys._getframe(0)
while frame is not None and "report_fd" not in frame.f_locals:
    frame = frame.f_back
os.write(frame.f_locals["report_fd"], {claim!r}.encode())
os._exit(0)
"""
    assert not code_check(FAST)(ADD, _fenced(forgery))


@pytest.mark.parametrize("returned", ["Yes()", "YesInt(0)", "YesList()", "YesStr('')"])
def test_a_value_equal_to_everything_does_not_cross(returned):
    forgery = f"""
class Yes:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = object.__hash__
class YesInt(int):
    __eq__ = Yes.__eq__
    __ne__ = Yes.__ne__
    __hash__ = int.__hash__
class YesList(list):
    __eq__ = Yes.__eq__
    __ne__ = Yes.__ne__
class YesStr(str):
    __eq__ = Yes.__eq__
    __ne__ = Yes.__ne__
    __hash__ = str.__hash__
def add(a, b):
    return {returned}
"""
    assert not code_check(FAST)(ADD, _fenced(forgery))


def test_patching_the_builtins_an_assertion_uses_changes_nothing():
    pairs = Example("mbpp/pairs", "", "", tests="import math\nassert set(pair(1)) == {1, 2}\n"
                    "assert math.isclose(half(3), 1.5, rel_tol=1e-9)\n",
                    solution="def pair(x):\n    return [x, x + 1]\n\ndef half(x):\n    return x / 2\n")
    forgery = ("import builtins, math\nbuiltins.set = lambda *args: {1, 2}\nmath.isclose = lambda *a, **k: True\n"
               "def pair(x):\n    return [0]\ndef half(x):\n    return 0.0\n")
    check = code_check(FAST)
    assert check(pairs, _fenced(pairs.solution))
    assert not check(pairs, _fenced(forgery))


@pytest.mark.parametrize("body", [
    "return 10 ** 5000",  # past Python's int-to-text limit: printed in no message
    "return [k * (2 ** 61 - 1) for k in range(1, 20000)]",  # every hash 0: set() of them would be quadratic
    "return [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "return 'x' * 3_000_000",
])
def test_hostile_values_are_judged_wrong_without_harming_the_judge(body):
    pairs = Example("mbpp/pairs", "", "", tests="assert set(pair(1)) == {1, 2}\n",
                    solution="def pair(x):\n    return [x, x + 1]\n")
    verdict = judge(pairs, f"def pair(x):\n    {body}\n", FAST)
    assert not verdict.passed and verdict.failed == (0,) and len(verdict.why) < 400
    verdict = judge(ADD, f"def add(a, b):\n    {body}\n", FAST)  # compared as it is, and shown
    assert not verdict.passed and verdict.failed == (0, 1) and len(verdict.why) < 400


def test_the_candidate_never_sees_the_expected_values():
    secret = Example("mbpp/secret", "", "", tests="assert add(2, 3) == 987654321\n",
                     solution="def add(a, b):\n    return 987654321\n")
    spy = ("import os, sys\nfor name in sorted(os.listdir('/t2reg')):\n    print(name, open('/t2reg/' + name, 'rb').read())\n"
           "print(sys._getframe(1).f_locals)\ndef add(a, b):\n    return 0\n")
    verdict = judge(secret, spy, FAST)
    assert "plan.marshal" in verdict.run.stdout and "add(2, 3)" in verdict.run.stdout
    assert "987654321" not in verdict.run.stdout and not verdict.passed


# -- what counts, and what does not -----------------------------------------------------------------------------------

def test_only_the_values_count_not_the_exit_status_or_the_output():
    noisy = ADD.solution + "import atexit, os, sys\nprint('FAILED')\nprint('Traceback', file=sys.stderr)\n" \
                           "atexit.register(lambda: os._exit(3))\n"
    verdict = judge(ADD, noisy, FAST)
    assert verdict.passed and verdict.run.returncode == 3


def test_the_weak_isolation_judges_the_same_way_when_named():
    assert judge(ADD, ADD.solution, FAST, isolation="weak").passed
    assert not judge(ADD, FRAME_FORGERY, FAST, isolation="weak").passed


def test_a_failing_check_is_named_and_the_others_still_judged():
    half_right = "def add(a, b):\n    return 5\n"
    verdict = judge(ADD, half_right, FAST)
    assert not verdict.passed and verdict.failed == (1,) and "gave 5" in verdict.why


@pytest.mark.parametrize("program, why", [
    ("def add(a, b):\n    raise ValueError('no')\n", "raised ValueError"),
    ("def add(a, b):\n    return object()\n", "cannot be reported"),
    ("def add(a, b):\n    while True:\n        pass\n", "timed out"),
    ("import sys\nsys.exit(0)\ndef add(a, b):\n    return a + b\n", "not one value per check"),
    ("def add(a, b):\n    return a + b\nimport os\nos.close(3)\n", ""),
])
def test_programs_that_do_not_answer_are_wrong(program, why):
    verdict = judge(ADD, program, Limits(wall_seconds=3, cpu_seconds=3))
    assert not verdict.passed and why in verdict.why


def test_a_problem_whose_reference_fails_its_tests_is_refused_not_scored():
    broken = Example("mbpp/broken", "", "", tests="assert add(2, 3) == 5\n", solution=WRONG_ADD)
    with pytest.raises(UncheckableTestsError, match="fails its own test on line 1"):
        judge(broken, ADD.solution, FAST)
    raising = Example("mbpp/raising", "", "", tests="assert add(2, 3) == 5\n", solution="def add(a, b):\n    1 / 0\n")
    with pytest.raises(UncheckableTestsError, match="raised on line 1 .*ZeroDivisionError"):
        code_check(FAST)(raising, _fenced(ADD.solution))


def test_a_reference_whose_other_assertions_fail_is_refused_too():
    constant = Example("mbpp/constant", "", "", tests="assert add(2, 3) == 5\nassert 1 == 2\n", solution=ADD.solution)
    with pytest.raises(UncheckableTestsError, match="ended with status 1 .*AssertionError"):
        judge(constant, ADD.solution, FAST)
    with pytest.raises(UncheckableTestsError, match="no reference solution"):
        judge(Example("mbpp/none", "", "", tests="assert add(2, 3) == 5\n"), ADD.solution, FAST)


def test_the_reference_runs_once_per_problem():
    example = Example("mbpp/once", "", "", tests="assert add(1, 1) == 2\n", solution=ADD.solution)
    before = len(judge_module._cache)
    for answer in (ADD.solution, WRONG_ADD, ADD.solution):
        judge(example, answer, FAST)
    assert len(judge_module._cache) == before + 1


def test_a_run_the_machine_cannot_start_is_an_error_not_a_wrong_answer():
    # One process for the whole run: bubblewrap cannot even make its namespace. Nothing of the program ran.
    starved = Limits(wall_seconds=5, cpu_seconds=5, processes=1)
    with pytest.raises(SandboxStartError, match="did not start after 3 tries"):
        run_program("print('hello')", starved)
    with pytest.raises(SandboxStartError):
        code_check(starved)(ADD, _fenced(ADD.solution))


# -- real problems -------------------------------------------------------------------------------------------------------

def _perturbed(solution: str, name: str) -> str:
    """The reference with its entry function's outermost answer changed (recursive calls left alone)."""
    return solution + f"""

_t2reg_right, _t2reg_depth = {name}, [0]


def _t2reg_wrong(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "?"
    if isinstance(value, (list, tuple)):
        return type(value)(list(value) + [None])
    if isinstance(value, (set, dict)):
        return {{None}}
    return 0 if value is None else None


def {name}(*args, **kwargs):
    _t2reg_depth[0] += 1
    try:
        value = _t2reg_right(*args, **kwargs)
    finally:
        _t2reg_depth[0] -= 1
    return value if _t2reg_depth[0] else _t2reg_wrong(value)
"""


def _entry(ex: Example) -> str:
    if ex.id.startswith("HumanEval"):
        return ex.entry_point
    call = ast.parse(plan_tests(ex.tests, ex.solution, ex.id).checks[0].probe, mode="eval").body
    return call.func.id


@functools.lru_cache(maxsize=1)
def _sample() -> list[Example]:
    """A seeded sample of 8 MBPP and 8 HumanEval test problems (of those t2reg can judge)."""
    data = require_data()
    mbpp, humaneval = ds.mbpp(data, "test"), ds.humaneval(data, "test")
    humaneval = [ex for ex in humaneval if ex.id not in {"HumanEval/32", "HumanEval/38", "HumanEval/44",
                                                         "HumanEval/50", "HumanEval/53"}]
    rng = random.Random(28)
    return rng.sample(mbpp, 8) + rng.sample(humaneval, 8)


@pytest.mark.parametrize("index", range(16))
def test_real_problems_judge_the_reference_right_and_a_wrong_variant_wrong_as_their_tests_do(index):
    ex = _sample()[index]
    check = code_check()
    wrong = _perturbed(ex.solution, _entry(ex))
    assert check(ex, _fenced(ex.solution)), ex.id
    assert not check(ex, _fenced(wrong)), ex.id
    # The same verdicts as running the program with its tests in one interpreter (honest programs only).
    assert run_program(f"{ex.solution}\n\n{ex.tests}").passed
    assert not run_program(f"{wrong}\n\n{ex.tests}").passed
