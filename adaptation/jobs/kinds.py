"""The job kinds t2reg ships: adapt, train, eval and transfer. Each spec's ``run`` names the library call
that does the work (a resumed transfer redoes only what is missing: transfers made are reused, a
distillation continues from its checkpoint, a projection from its cached moments)."""

from __future__ import annotations

from t2reg.adaptation.crossmodel.spec import TransferSpec
from t2reg.adaptation.evaluation.spec import EvalSpec
from t2reg.adaptation.jobs.runner import register_job_kind
from t2reg.adaptation.search.spec import AdaptSpec
from t2reg.adaptation.training.spec import TrainSpec

for spec in (AdaptSpec, TrainSpec, EvalSpec, TransferSpec):
    register_job_kind(spec)
