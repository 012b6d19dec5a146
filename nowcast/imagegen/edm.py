"""NVIDIA EDM network pickles, loaded without the EDM repository, as solver-core denoisers.

EDM's pretrained files (``edm-cifar10-32x32-uncond-vp.pkl`` …) are pickles of a dict whose
``'ema'`` entry is the network. Every network class was decorated with EDM's
``torch_utils.persistence.persistent_class``, so each object is stored as
``_reconstruct_persistent_obj(meta)`` with ``meta = {type, version, module_src, class_name, state}``:
unpickling **executes** ``module_src`` (the full source of EDM's ``training/networks.py``) and then
restores ``state`` into an instance of ``class_name``. This module reproduces that without EDM's code
(which is CC BY-NC-SA and is not vendored): a :class:`pickle.Unpickler` maps the two EDM globals
(``_reconstruct_persistent_obj`` and ``dnnlib``'s ``EasyDict``) to stand-ins here, and the
``from torch_utils import persistence`` inside the stored source finds a stand-in module for as long
as the file is being loaded.

Because loading runs code stored in the file, :func:`load_edm_pickle` refuses unless the caller
passes ``trust=True`` (``--trust-pickle`` on the command line). Only load files you trust, e.g.
the ones NVIDIA publishes.

:class:`EDMDenoiser` adapts the network ``net(x, sigma, class_labels)`` (already EDM-preconditioned,
``x = x₀ + σ·ε``) to the solver core's :class:`~nowcast.solvers.denoisers.Denoiser`: class labels as
integers or one-hot rows, σ range clamped to ``[0.002, 80]`` where the pickle says ``[0, ∞]`` (as
diff-sampler and DyWeight do).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import types
import uuid
from pathlib import Path
from typing import Any

import torch

from ..foundation.provenance import file_digest
from ..solvers.denoisers import Denoiser, batch_sigma

__all__ = ["UntrustedPickleError", "EDM_PRETRAINED", "EDM_URL", "resolve_edm", "load_edm_pickle",
           "EDMDenoiser", "load_edm"]

EDM_URL = "https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/"
#: Published EDM networks, by the name used in the EDM paper's tables (``<name>.pkl`` under EDM_URL).
EDM_PRETRAINED = (
    "edm-cifar10-32x32-cond-vp", "edm-cifar10-32x32-cond-ve", "edm-cifar10-32x32-uncond-vp",
    "edm-cifar10-32x32-uncond-ve", "edm-ffhq-64x64-uncond-vp", "edm-ffhq-64x64-uncond-ve",
    "edm-afhqv2-64x64-uncond-vp", "edm-afhqv2-64x64-uncond-ve", "edm-imagenet-64x64-cond-adm",
)


class UntrustedPickleError(PermissionError):
    """Loading this file would run code stored in it, and the caller did not say it trusts it."""


# --------------------------------------------------------------------------------------------
# Finding the file
# --------------------------------------------------------------------------------------------

def resolve_edm(source: str | os.PathLike, sha256: str | None = None) -> Path:
    """Local path of an EDM pickle given as a path, a URL or a published name.

    Parameters
    ----------
    source : str or path-like
        An existing file; an ``http(s)://`` or ``file://`` URL, fetched once into
        ``$NOWCAST_CACHE/edm`` (default ``~/.cache/nowcast/edm``); or one of :data:`EDM_PRETRAINED`
        (fetched from NVIDIA's server the same way), through :func:`nowcast.hub.fetch`.
    sha256 : str, optional
        Expected SHA-256 of the file (a different file is refused).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        The file does not exist, or the download failed (e.g. no network); the message says where
        to put a copy.
    """
    text = str(source)
    if text in EDM_PRETRAINED:
        text = EDM_URL + text + ".pkl"
    if "://" not in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such EDM pickle (give a file, a URL or one of "
                                    f"{', '.join(EDM_PRETRAINED)})")
        if sha256 is not None and file_digest(path) != sha256.lower():
            raise ValueError(f"{path}: not the expected EDM pickle (SHA-256 {file_digest(path)}, expected {sha256})")
        return path
    from ..hub import fetch

    return fetch(text, "edm", sha256)


# --------------------------------------------------------------------------------------------
# Stand-ins for EDM's torch_utils / dnnlib
# --------------------------------------------------------------------------------------------

class EasyDict(dict):
    """``dnnlib.EasyDict``: a dict with attribute access (missing attributes raise AttributeError)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]


class _Stub:
    """Placeholder for a stored object whose source could not be executed (e.g. EDM's augment pipe,
    which needs EDM's real ``torch_utils.misc``). Sampling needs only the network."""

    def __init__(self, class_name: str, error: str):
        self.class_name, self.error = class_name, error

    def __setstate__(self, state):  # pickle may restore state into it; keep only the name
        pass

    def __repr__(self) -> str:
        return f"<unloaded {self.class_name}: {self.error}>"


class _Reconstructor:
    """``_reconstruct_persistent_obj`` for one load: executes each distinct source once."""

    def __init__(self):
        self.modules: dict[str, types.ModuleType] = {}

    def module(self, src: str, class_name: str) -> types.ModuleType:
        if src not in self.modules:
            name = f"_nowcast_edm_{uuid.uuid4().hex[:12]}"
            mod = types.ModuleType(name)
            sys.modules[name] = mod  # dataclasses, typing … look their module up by name
            exec(compile(src, f"<pickled {class_name} source>", "exec"), mod.__dict__)  # noqa: S102
            self.modules[src] = mod
        return self.modules[src]

    def __call__(self, meta: dict) -> Any:
        meta = EasyDict(meta)
        if meta.get("type") != "class":
            raise pickle.UnpicklingError(f"unsupported EDM persistent object type {meta.get('type')!r}")
        try:
            cls = self.module(meta.module_src, meta.class_name).__dict__[meta.class_name]
        except Exception as err:  # noqa: BLE001 — any failure of foreign code: keep a stub
            return _Stub(meta.class_name, f"{type(err).__name__}: {err}")
        obj = cls.__new__(cls)
        state = meta.state
        if state is not None:
            setstate = getattr(obj, "__setstate__", None)
            if setstate is not None:
                setstate(dict(state))
            else:
                obj.__dict__.update(state)
        return obj


def _shim_modules(reconstruct: _Reconstructor) -> dict[str, types.ModuleType]:
    def persistent_class(cls):
        return cls

    pkg = types.ModuleType("torch_utils")
    pkg.__path__ = []
    persistence = types.ModuleType("torch_utils.persistence")
    persistence.persistent_class = persistent_class
    persistence.import_hook = lambda hook: hook
    persistence._reconstruct_persistent_obj = reconstruct
    misc = types.ModuleType("torch_utils.misc")
    pkg.persistence, pkg.misc = persistence, misc
    dnnlib = types.ModuleType("dnnlib")
    dnnlib.__path__ = []
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = dnnlib.EasyDict = EasyDict
    dnnlib.util = util
    return {"torch_utils": pkg, "torch_utils.persistence": persistence, "torch_utils.misc": misc,
            "dnnlib": dnnlib, "dnnlib.util": util}


@contextlib.contextmanager
def _shims(reconstruct: _Reconstructor):
    """Stand-in ``torch_utils``/``dnnlib`` in ``sys.modules`` while loading, unless real ones exist."""
    added = []
    for name, mod in _shim_modules(reconstruct).items():
        if name not in sys.modules:
            sys.modules[name] = mod
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, reconstruct: _Reconstructor):
        super().__init__(file)
        self.reconstruct = reconstruct

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch_utils.persistence" and name == "_reconstruct_persistent_obj":
            return self.reconstruct
        if module in ("dnnlib", "dnnlib.util") and name == "EasyDict":
            return EasyDict
        return super().find_class(module, name)


def load_edm_pickle(source: str | os.PathLike, *, trust: bool = False) -> Any:
    """Unpickle an EDM network file (its whole content, usually a dict with ``'ema'``).

    Parameters
    ----------
    source : str or path-like
        File, URL or published name (see :func:`resolve_edm`).
    trust : bool
        Must be True: unpickling executes the Python source stored in the file.

    Returns
    -------
    object
        What the file holds: for EDM training snapshots ``{'ema': net, 'loss_fn': …,
        'augment_pipe': …, 'dataset_kwargs': …}``.

    Raises
    ------
    UntrustedPickleError
        ``trust`` is False (nothing is read).
    pickle.UnpicklingError
        The file is not a pickle of this kind.
    """
    if not trust:
        raise UntrustedPickleError(
            f"{source}: loading an EDM pickle runs the Python code stored in it. Load only files you "
            "trust (e.g. NVIDIA's published networks) and say so: trust=True, or --trust-pickle on the "
            "command line.")
    path = resolve_edm(source)
    reconstruct = _Reconstructor()
    try:
        with _shims(reconstruct), open(path, "rb") as f:
            return _Unpickler(f, reconstruct).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as err:
        raise pickle.UnpicklingError(f"{path}: not a readable EDM network pickle ({type(err).__name__}: "
                                     f"{err})") from err


# --------------------------------------------------------------------------------------------
# The denoiser adapter
# --------------------------------------------------------------------------------------------

class EDMDenoiser(Denoiser):
    """An EDM network ``net(x, sigma, class_labels)`` as a solver-core denoiser.

    Parameters
    ----------
    net : torch.nn.Module
        An EDM-preconditioned network (``EDMPrecond``, ``VPPrecond``, ``VEPrecond``,
        ``iDDPMPrecond``) with attributes ``img_channels``, ``img_resolution``, ``label_dim``,
        ``sigma_min``, ``sigma_max`` and ``sigma_data`` (defaults where absent).
    sigma_min, sigma_max : float, optional
        Override the network's σ range; by default it is taken from the network and clamped to
        ``[0.002, 80]``.

    Notes
    -----
    ``cond`` holds the class labels: ``None`` for unconditional networks, integer classes of shape
    ``(B,)`` or one-hot/soft rows of shape ``(B, label_dim)``. The network runs in float32 whatever
    the dtype of ``x`` (on CUDA, EDM nets built with ``use_fp16`` use fp16 internally).
    """

    def __init__(self, net: torch.nn.Module, sigma_min: float | None = None, sigma_max: float | None = None):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.label_dim = int(getattr(net, "label_dim", 0) or 0)
        channels = int(getattr(net, "img_channels", 3))
        res = int(getattr(net, "img_resolution", 32))
        self.shape = (channels, res, res)
        self.sigma_data = float(getattr(net, "sigma_data", 0.5))
        lo = float(getattr(net, "sigma_min", 0.0))
        hi = float(getattr(net, "sigma_max", float("inf")))
        self.sigma_min = float(sigma_min) if sigma_min is not None else max(lo, 0.002)
        self.sigma_max = float(sigma_max) if sigma_max is not None else min(hi, 80.0)

    def labels(self, cond: Any, batch: int, device: torch.device) -> torch.Tensor | None:
        """Class labels in the network's one-hot form (``None`` for unconditional networks)."""
        if self.label_dim == 0:
            if cond is not None:
                raise ValueError("this EDM network is unconditional; it takes no class labels")
            return None
        if cond is None:
            raise ValueError(f"this EDM network is class-conditional ({self.label_dim} classes): give labels")
        c = torch.as_tensor(cond, device=device)
        if c.ndim == 1:
            if c.dtype.is_floating_point:
                raise ValueError("class labels of shape (B,) must be integers")
            if c.numel() and (int(c.min()) < 0 or int(c.max()) >= self.label_dim):
                raise ValueError(f"class labels must lie in [0, {self.label_dim})")
            c = torch.nn.functional.one_hot(c.long(), self.label_dim)
        if c.shape != (batch, self.label_dim):
            raise ValueError(f"class labels: expected shape ({batch},) or ({batch}, {self.label_dim}), "
                             f"got {tuple(c.shape)}")
        return c.float()

    def forward(self, x, sigma, cond=None):  # noqa: D102
        s = batch_sigma(sigma, x).float()
        out = self.net(x.float(), s, self.labels(cond, x.shape[0], x.device))
        return out.to(x.dtype)


def load_edm(source: str | os.PathLike, *, trust: bool = False, key: str = "ema",
             device: str | torch.device = "cpu") -> EDMDenoiser:
    """Load an EDM pickle and wrap its network as an :class:`EDMDenoiser`.

    Parameters
    ----------
    source : str or path-like
        File, URL or published name (see :func:`resolve_edm`).
    trust : bool
        Must be True (see :func:`load_edm_pickle`).
    key : str
        Entry of the pickled dict holding the network (EDM's snapshots: ``'ema'``).
    device : str or torch.device

    Returns
    -------
    EDMDenoiser
    """
    data = load_edm_pickle(source, trust=trust)
    net = data[key] if isinstance(data, dict) else data
    if isinstance(net, _Stub):
        raise pickle.UnpicklingError(f"{source}: the network's stored source did not run: {net.error}")
    if not isinstance(net, torch.nn.Module):
        raise pickle.UnpicklingError(f"{source}: entry {key!r} is a {type(net).__name__}, not a network")
    return EDMDenoiser(net).to(device)
