"""A registry's whole state, to show that a refused operation left it exactly as it was."""

from __future__ import annotations

import hashlib

from t2reg.registry import Registry
from t2reg.registry.orm import Base


def snapshot(registry: Registry) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """Every row of every table (each as a digest of its values, sorted), every blob's name and every temp file
    of the blob store: two snapshots are equal only when nothing was added, removed or changed."""
    with registry.db.session() as session:
        rows = {table.name: sorted(hashlib.sha256(repr(tuple(row)).encode()).hexdigest()
                                   for row in session.execute(table.select()))
                for table in Base.metadata.sorted_tables}
    blobs = sorted(sha for sha, _ in registry.blobs.iter_blobs())
    temp = sorted(map(str, registry.blobs.iter_temp_files()))
    return rows, blobs, temp
