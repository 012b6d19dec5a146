"""The package's cache directory: ``$NOWCAST_CACHE`` or ``~/.cache/nowcast``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """``$NOWCAST_CACHE`` (or ``~/.cache/nowcast``) joined with ``parts``; not created here.

    Parameters
    ----------
    *parts : str
        Sub-directories (``"synthetic"``, ``"teachers"``, ``"edm"``, …).

    Returns
    -------
    pathlib.Path
    """
    return Path(os.environ.get("NOWCAST_CACHE") or Path.home() / ".cache" / "nowcast").joinpath(*parts)
