"""``python -m t2reg.cli``."""

from t2reg.cli.launch import main

main()
