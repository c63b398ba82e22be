"""The shared evaluation data beside the clone (../shared/data); CI must have it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def require_data() -> Path:
    """The data folder, or a skip here and a failure on CI."""
    if not DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{DATA} is missing on CI")
        pytest.skip(f"{DATA} is not here")
    return DATA
