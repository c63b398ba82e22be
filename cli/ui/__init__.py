"""``t2reg ui``: a read-only web application over the registry (FastAPI, imported only when it runs)."""
