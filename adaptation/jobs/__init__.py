"""Jobs: the runner (claims, heartbeats, checkpoints, the worker loop) and the built-in job kinds,
registered by importing them here."""

from t2reg.adaptation.jobs.runner import (
    JobContext,
    JobKind,
    job_kind,
    job_kinds,
    record_of,
    register_job_kind,
    run_job,
    run_with_progress,
    spec_of,
    submit,
    submit_here,
    work,
    worker_name,
)

# Registration on import.
from t2reg.adaptation.jobs import kinds  # noqa: E402,F401  isort: skip

__all__ = ["JobContext", "JobKind", "job_kind", "job_kinds", "record_of", "register_job_kind", "run_job",
           "run_with_progress", "spec_of", "submit", "submit_here", "work", "worker_name"]
