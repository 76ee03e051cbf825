"""Lazy imports of optional frameworks, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require", "EXTRAS"]

#: Top-level package -> the mcdrop extra that installs it.
EXTRAS = {"torch": "torch", "jax": "jax", "flax": "jax", "keras": "keras"}


def require(module: str, *, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise ImportError naming the extra to install.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"torch"`` or ``"flax.nnx"``.
    purpose : str, optional
        What needs it (for the message), e.g. ``"the torch adapter"``.
    """
    top = module.split(".", 1)[0]
    extra = EXTRAS.get(top, top)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = purpose or f"auditing {top} implementations"
        raise ImportError(
            f"{what} needs the optional package `{top}`, which is not installed "
            f"(or failed to import: {exc}); install it with: pip install 'mcdrop[{extra}]'"
        ) from exc
