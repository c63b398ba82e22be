"""Evaluation: ``spec`` defines a run, ``scoring`` turns a backend's answers into scores,
``results`` holds what a run produced, ``runs`` evaluates and records.

Nothing is imported here, so reading a spec (as the CLI does) does not load torch.
"""
