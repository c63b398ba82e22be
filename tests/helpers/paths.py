"""Where things are, for tests that start subprocesses."""

from pathlib import Path

HELPERS = Path(__file__).resolve().parent
ROOT = HELPERS.parents[1]  # the repository: subprocesses run here so `tests.helpers` imports
