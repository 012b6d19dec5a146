"""Exported models: save a trained VAE or latent diffusion model to one file, load it by name or path.

The file is a checkpoint of :mod:`nowcast.checkpoints` (tensors + JSON configuration, read without
executing code)::

    {"format": "nowcast-model", "version": 1, "kind": "vae" | "ldm",
     "config": JSON {"task", "vae", "unet", "diffusion", "alignment"},
     "vae": state dict, "unet": state dict, "logvar": tensor, "alignment": state dict (optional),
     "meta": JSON (training provenance)}

Names: ``default`` is the tiny SEVIR-LR model shipped inside the package (see
``DEFAULT_MODEL.md``). A path may be such a file or a training run directory holding ``model.pt``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..checkpoints import load_checkpoint, save_checkpoint
from .alignment import AlignmentConfig, AlignmentNet
from .ldm import DiffusionConfig, LatentDiffusion
from .unet import SpaceTimeUNet, UNetConfig
from .vae import FrameVAE, VAEConfig

__all__ = ["PRETRAINED", "LoadedModel", "resolve_model", "save_vae", "save_model", "load_vae", "load_model",
           "read_meta", "PRETRAINED_SOLVERS", "resolve_solver", "load_trained_solver"]

#: Models shipped with the package: name → file under ``nowcast/models/weights``.
PRETRAINED = {"default": "default.pt"}
#: Learned solvers shipped with the package (trained for the model of the same name).
PRETRAINED_SOLVERS = {"default": "default-spanlift.pt"}
FORMAT, VERSION = "nowcast-model", 1


@dataclass
class LoadedModel:
    """A loaded latent diffusion nowcaster.

    Attributes
    ----------
    ldm : LatentDiffusion
        The model (EMA weights, eval mode).
    task : str
        Task preset it was trained for (``sevirlr`` or ``sevir``).
    align : AlignmentNet or None
        The knowledge-alignment network, when one was trained.
    meta : dict
        Training provenance.
    path : pathlib.Path
        The file it came from.
    """

    ldm: LatentDiffusion
    task: str
    align: AlignmentNet | None = None
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def frame_shape(self) -> tuple:
        """``(H, W)`` of the frames the model forecasts (its latent size times the VAE's downsampling)."""
        c, f = self.ldm.unet.cfg, self.ldm.vae.cfg.downsample_factor
        return (c.height * f, c.width * f)

    def check_frames(self, shape: tuple, where: str) -> None:
        """Refuse frames of another size than the model forecasts.

        Raises
        ------
        ValueError
            Naming both sizes and the two ways out.
        """
        if tuple(int(v) for v in shape) != self.frame_shape:
            h, w = (int(v) for v in shape)
            name = self.path.name if self.path is not None else "the model"
            raise ValueError(f"{where} has {h}×{w} frames, but {name} forecasts {self.frame_shape[0]}×"
                             f"{self.frame_shape[1]}; give a store built at the model's size, or a model trained "
                             "on this store (--model)")

    @property
    def is_shipped_default(self) -> bool:
        """Whether this is the ``default`` model shipped with the package (its SpanLift ships too)."""
        try:
            return self.path is not None and self.path.resolve() == resolve_model("default").resolve()
        except FileNotFoundError:
            return False


def _shipped(filename: str) -> Path:
    from importlib.resources import files

    return Path(str(files("nowcast.models") / "weights" / filename))


def _resolve(name_or_path, shipped: dict, filename: str, what: str, hint: str) -> Path:
    """A shipped name → its file; a directory → ``dir/filename``; else the file itself."""
    key = str(name_or_path)
    if key in shipped:
        path = _shipped(shipped[key])
        if not path.is_file():
            raise FileNotFoundError(f"the shipped {what} {key!r} is missing from the installation ({path})")
        return path
    path = Path(key)
    if path.is_dir():
        path = path / filename
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {name_or_path!r}: give a name ({sorted(shipped)}), {hint}")
    return path


def resolve_solver(name_or_path: str | os.PathLike) -> Path:
    """The file of a learned solver: a name (``default``), a solver file, or a ``spanlift`` training
    run directory holding ``solver.pt``.

    Raises
    ------
    FileNotFoundError
        Naming what was looked for.
    """
    return _resolve(name_or_path, PRETRAINED_SOLVERS, "solver.pt", "learned solver",
                    "a solver file, or a spanlift training run directory holding solver.pt (a run writes it when "
                    "its training finishes)")


def load_trained_solver(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple:
    """A learned solver trained for a nowcaster, and its metadata.

    Returns
    -------
    tuple
        ``(solver, meta)``; ``meta['steps']`` is the number of steps it was trained for,
        ``meta['model_sha256']`` identifies the model file it was trained with.

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing file or one that is not a nowcast solver file.
    """
    from ..solvers.registry import load_learned_solver

    path = resolve_solver(name_or_path)
    solver, meta = load_learned_solver(path, map_location=device)
    if meta.get("task") == "image":
        raise ValueError(f"{path}: a solver trained for an image model, not for a nowcaster")
    return solver, meta


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """The file of a model name (``default``), a model file or a run directory with ``model.pt``.

    Raises
    ------
    FileNotFoundError
        Naming what was looked for and the known names.
    """
    return _resolve(name_or_path, PRETRAINED, "model.pt", "model",
                    "a model file, or a training run directory holding model.pt")


def _header(kind: str, config: dict, meta: dict | None) -> dict:
    return {"format": FORMAT, "version": VERSION, "kind": kind, "config": json.dumps(config),
            "meta": json.dumps(meta or {})}


def save_vae(path: str | os.PathLike, vae: FrameVAE, meta: dict | None = None) -> Path:
    """Export a frame VAE (``kind = 'vae'``)."""
    payload = _header("vae", {"vae": vae.cfg.to_dict()}, meta)
    payload["vae"] = {k: v.detach().cpu() for k, v in vae.state_dict().items()}
    return save_checkpoint(payload, path)


def save_model(path: str | os.PathLike, ldm: LatentDiffusion, task: str, align: AlignmentNet | None = None,
               meta: dict | None = None) -> Path:
    """Export a latent diffusion nowcaster (``kind = 'ldm'``), with its alignment network if given."""
    config = {"task": task, "vae": ldm.vae.cfg.to_dict(), "unet": ldm.unet.cfg.to_dict(),
              "diffusion": ldm.cfg.to_dict(), "alignment": align.cfg.to_dict() if align is not None else None}
    payload = _header("ldm", config, meta)
    payload["vae"] = {k: v.detach().cpu() for k, v in ldm.vae.state_dict().items()}
    payload["unet"] = {k: v.detach().cpu() for k, v in ldm.unet.state_dict().items()}
    payload["logvar"] = ldm.logvar.detach().cpu()
    if align is not None:
        payload["alignment"] = {k: v.detach().cpu() for k, v in align.state_dict().items()}
    return save_checkpoint(payload, path)


def _read(path: Path, kind: str | None) -> tuple[dict, dict]:
    ck = load_checkpoint(path)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ValueError(f"{path} is not an exported nowcast model (format {FORMAT!r})")
    if ck.get("version", 0) > VERSION:
        raise ValueError(f"{path} has model format version {ck['version']}; this nowcast reads ≤ {VERSION}")
    if kind is not None and ck["kind"] != kind and not (kind == "vae" and ck["kind"] == "ldm"):
        raise ValueError(f"{path} holds a {ck['kind']!r} model, not a {kind!r} model")
    return ck, json.loads(ck["config"])


def read_meta(name_or_path: str | os.PathLike) -> dict:
    """The provenance (``meta``) of an exported VAE or nowcaster."""
    ck, _ = _read(resolve_model(name_or_path), None)
    return json.loads(ck["meta"])


def load_vae(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> FrameVAE:
    """The frame VAE of an exported VAE or nowcaster (eval mode)."""
    ck, config = _read(resolve_model(name_or_path), "vae")
    vae = FrameVAE(VAEConfig.from_dict(config["vae"]))
    vae.load_state_dict(ck["vae"])
    return vae.to(device).eval()


def load_model(name_or_path: str | os.PathLike = "default", device: str | torch.device = "cpu",
               first_guess_pixels: bool | None = None) -> LoadedModel:
    """Load an exported nowcaster by name (``default``) or path (file or run directory).

    Parameters
    ----------
    name_or_path : str or path-like
        ``default`` or an exported file / run directory.
    device : str or torch.device
        Where the model goes.
    first_guess_pixels : bool, optional
        Override the model's ``diffusion.first_guess_pixels`` (a decoding choice of residual
        first-guess models that needs no retraining); default: as trained.

    Returns
    -------
    LoadedModel
        The model in eval mode on ``device``.

    Raises
    ------
    FileNotFoundError
        For an unknown name or a missing file.
    ValueError
        For a file that is not an exported nowcaster.
    """
    path = resolve_model(name_or_path)
    ck, config = _read(path, "ldm")
    vae = FrameVAE(VAEConfig.from_dict(config["vae"]))
    vae.load_state_dict(ck["vae"])
    dcfg = DiffusionConfig.from_dict(config["diffusion"])
    if first_guess_pixels is not None:
        dcfg = replace(dcfg, first_guess_pixels=bool(first_guess_pixels))
    ldm = LatentDiffusion(vae, SpaceTimeUNet(UNetConfig.from_dict(config["unet"])), dcfg)
    ldm.unet.load_state_dict(ck["unet"])
    with torch.no_grad():
        ldm.logvar.copy_(ck["logvar"])
    align = None
    if config.get("alignment") is not None and "alignment" in ck:
        align = AlignmentNet(AlignmentConfig.from_dict(config["alignment"]))
        align.load_state_dict(ck["alignment"])
        align = align.to(device).eval()
    return LoadedModel(ldm.to(device).eval(), config["task"], align, json.loads(ck["meta"]), path)
