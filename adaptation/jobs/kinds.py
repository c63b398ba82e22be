"""The job kinds t2reg ships: adapt, train, eval and transfer, each a spec and the library call it runs."""

from __future__ import annotations

from t2reg.adaptation.evaluation.spec import EvalSpec
from t2reg.adaptation.jobs.runner import library_call, register_job_kind
from t2reg.adaptation.search.spec import AdaptSpec
from t2reg.adaptation.training.spec import TrainSpec
from t2reg.transfer.spec import TransferSpec

register_job_kind(AdaptSpec, library_call("t2reg.adaptation.search.adapt:adapt", resumable=True, phases=True))
register_job_kind(TrainSpec, library_call("t2reg.adaptation.training.reinforce:train", resumable=True, phases=True))
register_job_kind(EvalSpec, library_call("t2reg.adaptation.evaluation.runs:run_evaluation"))
# Transfers already made are reused, so a resumed transfer job redoes only what is missing; a distillation
# continues from its checkpoint, a projection from its cached moments.
register_job_kind(TransferSpec, library_call("t2reg.adaptation.crossmodel.publishing:run_transfer", resumable=True))
