"""A separate process publishing one expert file again and again into a registry whose blobs live in its database.

Usage: same_bytes_worker.py DATABASE_URL HOME EXPERT_FILE COUNT
Prints each published reference on its own line.
"""

from __future__ import annotations

import sys

from t2reg.registry import Registry
from t2reg.settings import load_settings


def main() -> None:
    url, home, path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    # no blob root given: the registry's recorded choice (the database) must be found without one
    with Registry(load_settings(home=home, database_url=url)) as registry:
        for _ in range(count):
            print(registry.publish(path, name="same").ref, flush=True)


if __name__ == "__main__":
    main()
