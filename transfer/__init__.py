"""Mapping SVF experts between base models by canonical singular-value order."""

from t2reg.transfer.core import BASELINES, RankOptions, transfer
from t2reg.transfer.layout import Layout
from t2reg.transfer.report import TransferReport

__all__ = ["BASELINES", "Layout", "RankOptions", "TransferReport", "transfer"]
