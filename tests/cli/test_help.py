"""Every command has --help that explains it."""

import pytest

from t2reg.cli.main import _run, cli


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,)
        if hasattr(command, "commands"):
            yield from _commands(command, prefix + (name,))


@pytest.mark.parametrize("path", sorted(_commands(cli)), ids=" ".join)
def test_help_exits_zero_and_describes_the_command(path, capsys):
    assert _run([*path, "--help"], debug=False) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: t2reg " + " ".join(path))
    assert len(out.splitlines()) > 3


def _groups(group, prefix=()):
    yield prefix
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _groups(command, prefix + (name,))


@pytest.mark.parametrize("path", sorted(_groups(cli)), ids=lambda p: " ".join(p) or "t2reg")
def test_a_group_without_its_command_prints_its_help_as_text(path, capsys):
    # Not a one-line error with its newlines escaped: the help a user asked for by typing too little.
    assert _run(list(path), debug=False) == 2
    err = capsys.readouterr().err
    assert err.startswith("Usage: t2reg " + " ".join(path)) and "Commands:" in err and "\\n" not in err
