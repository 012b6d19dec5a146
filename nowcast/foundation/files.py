"""Atomic writes: write to a temporary file in the destination's directory, then rename over it.

A reader never sees a half-written file and a crash (or a full disk) leaves the previous file, if
any, intact; the temporary file is removed on any failure.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write", "atomic_write_text", "atomic_save", "check_writable", "check_free_space"]


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Refuse, before any work, an output that cannot be written: the nearest existing folder of
    ``path`` must be a writable directory.

    Raises
    ------
    ValueError
        Naming the output and the folder.
    """
    path = Path(path).expanduser().absolute()
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write the {what} {path}: {folder} is not a writable folder; "
                         "choose another location")
    return path


def check_free_space(path: str | os.PathLike, need_bytes: float, what: str = "output") -> None:
    """Refuse, before any work, an output larger than the free space of the folder it goes to.

    Raises
    ------
    ValueError
        With both figures.
    """
    import shutil

    folder = Path(path).expanduser().absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if need_bytes > free:
        raise ValueError(f"the {what} {path} needs up to {need_bytes / 1e6:.0f} MB but {folder} has "
                         f"{free / 1e6:.0f} MB free; free some space or choose another location")


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any], suffix: str = ".tmp") -> Path:
    """Create ``path`` by ``write(temporary_path)`` and a rename.

    Parameters
    ----------
    path : path-like
        Destination; its directory is created when missing.
    write : callable
        Writes the whole content to the temporary path it is given.
    suffix : str
        Suffix of the temporary file (writers that infer the format from it need the real one).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)          # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (torch is imported here, not by the foundation)."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
