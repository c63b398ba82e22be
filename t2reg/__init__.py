"""t2reg: an expert registry and cross-model transfer platform for Transformer-Squared SVF experts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("t2reg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
