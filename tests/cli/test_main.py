"""The CLI words a library error: its options as flags, its remedy as the command to type, on one line."""

from t2reg.cli.main import error_line
from t2reg.errors import InvalidInputError, NotFoundError, Remedy


def test_the_remedy_becomes_the_command_a_user_types_with_flags():
    error = NotFoundError("no spectra for 3 matrices of {model}", options=["model"],
                          remedy=Remedy("decompose them", ("model", "decompose"), ("smollm2-135m",),
                                        (("modules", "all"), ("max_rank", "64"))))
    assert error_line(error) == ("no spectra for 3 matrices of --model; decompose them: "
                                 "`t2reg model decompose smollm2-135m --modules all --max-rank 64`")


def test_arguments_that_need_quoting_are_quoted_as_a_shell_reads_them():
    error = InvalidInputError("x", remedy=Remedy("add it", ("model", "add"), ("./my model",)))
    assert error_line(error) == "x; add it: `t2reg model add './my model'`"


def test_an_error_without_a_remedy_is_its_message():
    assert error_line(InvalidInputError("{lr} must be positive", options=["lr"])) == "--lr must be positive"
