"""Experts in and out of t2reg: ``export`` merges an expert into a plain transformers model,
``reference`` imports the reference code's files."""
