"""A separate process that makes (or joins) a registry at the same moment as others.

Usage: open_worker.py DATABASE_URL HOME START_AT
Imports everything first, then sleeps until the wall-clock time START_AT, so every worker's
first statement reaches the new database at once; prints the registry's model names.
"""

from __future__ import annotations

import sys
import time

from t2reg.registry import Registry
from t2reg.settings import load_settings


def main() -> None:
    url, home, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start_at - time.time()))
    with Registry(load_settings(home=home, database_url=url), create=True) as registry:
        print(" ".join(sorted(m.name for m in registry.list_models())), flush=True)


if __name__ == "__main__":
    main()
