"""Work a data-driven transfer can reuse, kept under ``<home>/cache/<kind>/<digest of its key>/``.

What goes here depends only on its key (the models at their revisions, the
expert's bytes, the texts' sha256, the settings that change it), never on a
run: the moments two models share on a set of texts serve every expert carried
between them and its control; a teacher's option scores serve the transfer and
its shuffled control. Files land atomically; ``key.json`` beside them says what
they were computed from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from t2reg.files import contained, landing
from t2reg.registry import Registry


def cache_folder(registry: Registry, kind: str, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return contained(registry.settings.home, "cache", kind, digest)


def model_identity(registry: Registry, ref: str) -> dict[str, Any]:
    info = registry.get_model(ref)
    return {"name": info.name, "revision": info.revision, "spectra": info.spectra_fingerprint}


def write(folder: Path, name: str, data: bytes, key: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with landing(folder / "key.json") as fh:
        fh.write(json.dumps(key, indent=1, sort_keys=True).encode())
    with landing(folder / name) as fh:
        fh.write(data)
    return folder / name
