"""t2reg: an expert registry and cross-model transfer platform for Transformer-Squared SVF experts."""

# Nothing is imported here: the command's entry point (t2reg.cli.launch) must get to install its
# Ctrl-C handler before anything slow loads. ``__version__`` is computed on first use.

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module 't2reg' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("t2reg")
    except PackageNotFoundError:  # running from a source tree that was never installed
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value
