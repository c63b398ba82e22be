"""Settings, parsed in one place: flags override the environment, which overrides defaults.

=====================  ======================  ==================================
setting                environment             default
=====================  ======================  ==================================
home                   ``T2REG_HOME``          ``~/.t2reg``
database URL           ``T2REG_DATABASE_URL``  ``sqlite:///<home>/registry.db``
blob root              ``T2REG_BLOB_ROOT``     ``<home>/blobs`` (``db``: in the database)
job heartbeat timeout  ``T2REG_JOB_TIMEOUT``   ``120`` seconds
code sandbox           ``T2REG_SANDBOX``       ``namespaces`` (or ``weak``, by name)
=====================  ======================  ==================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from t2reg.errors import InvalidInputError

ENV_HOME = "T2REG_HOME"
ENV_DATABASE_URL = "T2REG_DATABASE_URL"
ENV_BLOB_ROOT = "T2REG_BLOB_ROOT"
ENV_JOB_TIMEOUT = "T2REG_JOB_TIMEOUT"
ENV_SANDBOX = "T2REG_SANDBOX"
SANDBOX_ISOLATIONS = ("namespaces", "weak")
DB_BLOBS = "db"  # the blob root that means "in the database itself" (a folder named db: write ./db)


@dataclass(frozen=True)
class Settings:
    """Where the registry lives."""

    home: Path
    database_url: str
    blob_root: Path | None  # None: blobs in the database (asked for as T2REG_BLOB_ROOT=db)
    job_timeout: float = 120.0  # a running job whose worker is silent this long may be claimed again

    @property
    def is_embedded(self) -> bool:
        """True when the database is the SQLite file under ``home``."""
        return self.database_url == default_database_url(self.home)


def default_database_url(home: Path) -> str:
    return f"sqlite:///{home / 'registry.db'}"


def load_settings(
    home: str | os.PathLike[str] | None = None,
    database_url: str | None = None,
    blob_root: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings from explicit values, then the environment, then defaults."""
    env = os.environ if environ is None else environ
    home_path = Path(home or env.get(ENV_HOME) or Path.home() / ".t2reg").expanduser().resolve()
    url = database_url or env.get(ENV_DATABASE_URL) or default_database_url(home_path)
    raw = blob_root or env.get(ENV_BLOB_ROOT) or home_path / "blobs"
    blobs = None if os.fspath(raw) == DB_BLOBS else Path(raw).expanduser().resolve()
    return Settings(home=home_path, database_url=url, blob_root=blobs, job_timeout=_job_timeout(env))


def _job_timeout(env: Mapping[str, str]) -> float:
    raw = env.get(ENV_JOB_TIMEOUT)
    if not raw:
        return 120.0
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < 1e9:  # nan, inf and absurd values would crash the worker's date arithmetic later
        raise InvalidInputError(f"{ENV_JOB_TIMEOUT} must be a positive, finite number of seconds (below 1e9), not {raw!r}")
    return value


def sandbox_isolation(environ: Mapping[str, str] | None = None) -> str:
    """How generated code is isolated: ``namespaces`` (the default: bubblewrap), or ``weak`` when asked for by name.

    ``weak`` (a subprocess with rlimits and an in-process guard) is no security
    boundary; it exists for machines where namespaces are unavailable, and only
    ever by explicit choice.
    """
    env = os.environ if environ is None else environ
    value = env.get(ENV_SANDBOX) or "namespaces"
    if value not in SANDBOX_ISOLATIONS:
        raise InvalidInputError(f"{ENV_SANDBOX} must be one of {', '.join(SANDBOX_ISOLATIONS)}, not {value!r}")
    return value
