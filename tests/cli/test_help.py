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
