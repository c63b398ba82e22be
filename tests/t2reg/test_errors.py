"""Errors speak the library's words; their remedy is data a caller can act on, and survives a process hop."""

import copy

import pytest

from t2reg.errors import ConflictError, InvalidInputError, NotFoundError, Remedy, T2RegError

DECOMPOSE = Remedy("decompose the model first", ("model", "decompose"), ("smollm2-135m",), (("modules", "all"),))


def test_the_message_ends_with_what_the_remedy_does_and_names_no_command():
    error = NotFoundError("no spectra at /x", remedy=DECOMPOSE)
    assert str(error) == "no spectra at /x; decompose the model first"
    assert error.render() == "no spectra at /x"  # the message alone, for a caller that words the remedy itself
    assert isinstance(error, LookupError) and error.exit_code == 3


def test_a_remedy_is_a_command_its_caller_spells():
    assert DECOMPOSE.words() == ("model", "decompose", "smollm2-135m", "modules", "all")
    switch = Remedy("force it", ("jobs", "resume"), ("7",), (("force", None), ("detach", None)))
    assert switch.words(lambda o: f"--{o}") == ("jobs", "resume", "7", "--force", "--detach")


def test_an_error_without_a_remedy_reads_as_before():
    error = InvalidInputError("{batch_size} must be positive", options=["batch_size"])
    assert error.remedy is None and str(error) == "batch_size must be positive"
    assert error.render(lambda o: "--" + o.replace("_", "-")) == "--batch-size must be positive"


@pytest.mark.parametrize("error", [NotFoundError("gone", remedy=DECOMPOSE), ConflictError("{name} taken", options=["name"]),
                                   T2RegError("plain")])
def test_an_error_rebuilt_elsewhere_keeps_its_class_options_and_remedy(error):
    # Ray rebuilds errors through __reduce__, as copy does: the remedy must not be lost on the way.
    rebuilt = copy.deepcopy(error)
    assert type(rebuilt) is type(error) and rebuilt.template == error.template
    assert rebuilt.options == error.options and rebuilt.remedy == error.remedy and str(rebuilt) == str(error)
