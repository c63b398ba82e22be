"""t2reg's schema migrations (alembic scripts in ``versions/``)."""

# The newest revision in versions/: what a current registry is at. The check every command runs compares with it
# without loading alembic; tests/registry/test_migrations.py holds it equal to the scripts' head.
HEAD = "0008"
