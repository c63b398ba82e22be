"""The registry: a database-backed, versioned catalog of SVF experts."""

from t2reg.registry.api import Registry
from t2reg.registry.entities import ExpertVersion, ModelInfo, RankedVersion

__all__ = ["ExpertVersion", "ModelInfo", "RankedVersion", "Registry"]
