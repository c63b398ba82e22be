"""``python -m t2reg.cli``."""

from t2reg.cli.main import main

main()
