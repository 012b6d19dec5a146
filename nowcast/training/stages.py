"""The three training stages of the nowcaster: ``vae``, ``ldm`` (the denoiser) and ``align``.

Each builder returns a :class:`~.loop.Stage`. Frames are VIL bytes / 255; missing pixels (byte
255) are set to 0 in the inputs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..data.codec import from_unit, to_unit
from ..data.windows import WindowDataset, window_frames
from ..foundation.tasks import get_task
from ..models.alignment import AlignmentConfig, AlignmentNet, alignment_loss
from ..models.ema import EMA
from ..models.ldm import DiffusionConfig, LatentDiffusion
from ..models.model_files import load_model, load_vae, read_meta, save_model, save_vae
from ..models.unet import SpaceTimeUNet, UNetConfig
from ..models.vae import FrameVAE, PatchDiscriminator, VAEConfig, discriminator_loss, vae_loss
from .config import TrainConfig
from .loop import Stage, step_seed

__all__ = ["build_stage", "check_init", "model_configs", "frame_size", "resolved_config"]


def frame_size(store: str) -> tuple:
    """``(H, W)`` of a store's frames."""
    from ..data.store import open_store

    ds = open_store(store)
    return int(ds.sizes["y"]), int(ds.sizes["x"])


def model_configs(cfg: TrainConfig, frame_hw: tuple) -> tuple:
    """``(VAEConfig, UNetConfig, DiffusionConfig, AlignmentConfig)`` for the task and frame size."""
    task = get_task(cfg.task)
    vae = VAEConfig.from_dict(cfg.vae)
    f = vae.downsample_factor
    if frame_hw[0] % f or frame_hw[1] % f:
        raise ValueError(f"frames of {frame_hw} are not divisible by the VAE's downsampling {f}")
    h, w = frame_hw[0] // f, frame_hw[1] // f
    unet = UNetConfig.from_dict({"latent_channels": vae.latent_channels, "context_frames": task.in_len,
                                 "target_frames": task.out_len, "height": h, "width": w, **cfg.unet})
    align = AlignmentConfig.from_dict({"latent_channels": vae.latent_channels, "target_frames": task.out_len,
                                       "height": h, "width": w, **cfg.alignment})
    return vae, unet, DiffusionConfig.from_dict(cfg.diffusion), align


def resolved_config(cfg: TrainConfig, frame_hw: tuple) -> dict:
    """``cfg.to_dict()`` with every model section resolved to its full config, defaults included.

    A run's ``config.json`` records this, so that a run is resumed only by the same models even
    after a default of :class:`VAEConfig`, :class:`UNetConfig`, ``DiffusionConfig`` or
    :class:`AlignmentConfig` changes (an overrides-only record would match the new default).

    Parameters
    ----------
    cfg : TrainConfig
        A ``vae``, ``ldm`` or ``align`` configuration.
    frame_hw : tuple
        ``(H, W)`` of the store's frames (they fix the latent size).

    Returns
    -------
    dict
        JSON-ready configuration.
    """
    vae, unet, diffusion, align = model_configs(cfg, frame_hw)
    return {**cfg.to_dict(), "vae": vae.to_dict(), "unet": unet.to_dict(), "diffusion": diffusion.to_dict(),
            "alignment": align.to_dict()}


def _optimizer(cfg: TrainConfig, betas=None):
    return lambda params: torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(betas or cfg.betas),
                                            weight_decay=cfg.weight_decay)


def _val_windows(store: str, cfg: TrainConfig) -> list:
    ds = WindowDataset(store, cfg.task, "val")
    n = min(cfg.val_windows, len(ds))
    idx = np.linspace(0, len(ds) - 1, n).round().astype(int) if n else []
    return [ds[int(i)] for i in idx]


def _bytes(x: torch.Tensor) -> np.ndarray:
    """Model-scale frames to VIL bytes 0–254 (a forecast never says 'missing')."""
    return from_unit(x.detach().float().cpu().numpy())


def _scores(acc) -> dict:
    from ..verification.summarise import summarize

    res = acc.result()
    sm = summarize(res)
    out = {f"CSI_M_pool{int(s)}" if s > 1 else "CSI_M": float(sm.CSI_M.sel(scale=s)) for s in sm.scale.values}
    out["HSS"] = float(np.nanmean(sm.HSS.sel(scale=1).values))
    out["CRPS"] = float(sm.CRPS)
    out["CRPS_last_lead"] = float(res.CRPS.isel(lead_time=-1))
    return out


_INIT_HELP = {"ldm": "the ldm stage starts from a trained VAE: pass --init with an exported VAE (model.pt) or "
                     "the run directory of a `--stage vae` run",
              "align": "the align stage needs the trained nowcaster: pass --init with a model file or the run "
                       "directory of a `--stage ldm` run"}


def check_init(cfg: TrainConfig) -> None:
    """Refuse an ``ldm`` or ``align`` stage without ``init``, or whose ``init`` does not exist."""
    from ..models.model_files import resolve_model

    if cfg.stage in _INIT_HELP:
        if cfg.init is None:
            raise ValueError(_INIT_HELP[cfg.stage])
        resolve_model(cfg.init)            # FileNotFoundError naming what is missing
    if cfg.warm_start is not None:
        resolve_model(cfg.warm_start)


def _warm_start(cfg: TrainConfig, vae: FrameVAE, ucfg: UNetConfig, dcfg: DiffusionConfig, device):
    """The nowcaster of ``cfg.warm_start``, checked against the run's VAE and model settings, and the
    run's diffusion settings with its latent scale factor."""
    src = load_model(cfg.warm_start, device)
    if replace(src.ldm.unet.cfg, time_padding=ucfg.time_padding).to_dict() != ucfg.to_dict():   # same weights
        raise ValueError(f"warm start: the UNet of {cfg.warm_start} does not match the config's unet section")
    theirs = src.ldm.cfg
    if dcfg.scale_factor <= 0:                    # automatic: the scale its denoiser was trained with
        dcfg = replace(dcfg, scale_factor=theirs.scale_factor)
    if replace(theirs, first_guess_pixels=dcfg.first_guess_pixels) != dcfg:   # a decoding choice may differ
        raise ValueError(f"warm start: the diffusion settings of {cfg.warm_start} do not match the config's "
                         f"(theirs {theirs.to_dict()}, the run's {dcfg.to_dict()})")
    mine, other = vae.state_dict(), src.ldm.vae.state_dict()
    if mine.keys() != other.keys() or any(not torch.equal(mine[k], other[k].to(mine[k])) for k in mine):
        raise ValueError(f"warm start: {cfg.warm_start} was trained on the latents of another VAE than {cfg.init}")
    return src, dcfg


# -- vae -------------------------------------------------------------------------------------------
def _vae_stage(cfg: TrainConfig, store: str, device: torch.device) -> Stage:
    vcfg = model_configs(cfg, frame_size(store))[0]
    torch.manual_seed(cfg.seed)
    vae = FrameVAE(vcfg).to(device)
    modules, params = {"vae": vae}, {"vae": list(vae.parameters())}
    disc = None
    if vcfg.disc_start >= 0:
        disc = PatchDiscriminator(vcfg.in_channels, vcfg.disc_channels, vcfg.disc_layers).to(device)
        modules["disc"], params["disc"] = disc, list(disc.parameters())
    data = WindowDataset(store, cfg.task, "train", augment=cfg.augment, seed=cfg.seed)
    n_frames = data.task.seq_len

    def sample(step, micro, rank):
        rng = np.random.default_rng(step_seed(cfg.seed, step, micro, rank, 1))
        windows = rng.integers(len(data), size=cfg.batch_size)
        frames = rng.integers(n_frames, size=cfg.batch_size)
        return torch.stack([window_frames(data[int(w)])[int(f)] for w, f in zip(windows, frames)])[:, None]

    def compute(x, step, generator):
        loss, parts = vae_loss(vae, x, step, disc, generator)
        losses = {"vae": loss}
        logs = {"loss": loss.detach(), "rec": parts["rec"], "kl": parts["kl"]}
        if disc is not None and step >= vcfg.disc_start:
            losses["disc"] = d = discriminator_loss(disc, x, parts["x_rec"])
            logs.update(g=parts["g"], d_weight=parts["d_weight"], disc=d.detach())
        return losses, logs

    val = _val_windows(store, cfg)

    @torch.no_grad()
    def validate(step):
        from ..verification.accumulate import EvaluationAccumulator

        vae.eval()
        acc = EvaluationAccumulator(n_lead=n_frames, fss=False, lpips=None)   # frames as 'leads'
        for item in val:
            x = window_frames(item)[:, None].to(device)
            rec = vae(x, sample=False)[0]
            acc.update(_bytes(rec)[None, None, :, 0], _bytes(x)[None, :, 0])
        vae.train()
        s = _scores(acc)
        return {"rec_MAE": s["CRPS"], "CSI_M": s["CSI_M"], "CSI_M_pool4": s["CSI_M_pool4"],
                "CSI_M_pool16": s["CSI_M_pool16"]}

    return Stage(modules=modules, params=params, sample=sample, compute=compute, validate=validate, lr=cfg.schedule(),
                 export=lambda path, meta: save_vae(path, vae, meta), optimizer=_optimizer(cfg, (0.5, 0.9)))


# -- ldm -------------------------------------------------------------------------------------------
def _latent_cache(vae: FrameVAE, data: WindowDataset, device, progress: bool) -> tuple:
    """Posterior mean and std ``(E, T, L, h, w)`` of every frame of the split's events."""
    import zarr
    from tqdm.auto import tqdm

    vil = zarr.open_group(data.store, mode="r")["vil"]
    means, stds = [], []
    for e in tqdm(data.events, desc="encoding train frames (latent cache)", unit="event", disable=not progress):
        raw = np.asarray(vil[int(e)])
        x = torch.from_numpy(to_unit(raw))[:, None].to(device)
        with torch.no_grad():
            post = vae.encode(x)
        means.append(post.mean.cpu())
        stds.append(post.std.cpu())
    return torch.stack(means), torch.stack(stds)


def _first_guess_cache(ldm: LatentDiffusion, data: WindowDataset, starts: np.ndarray, device,
                       progress: bool) -> torch.Tensor:
    """The first-guess latents ``(E, S, Tt, L, h, w)`` of the window starting at each of ``starts`` in
    every event of the split (the condition's tail that :meth:`LatentDiffusion.encode_context` adds)."""
    import zarr
    from tqdm.auto import tqdm

    task = data.task
    vil = zarr.open_group(data.store, mode="r")["vil"]
    out = []
    for e in tqdm(data.events, desc=f"first guess ({ldm.cfg.first_guess}) of every train window", unit="event",
                  disable=not progress):
        raw = np.asarray(vil[int(e)])
        x = torch.from_numpy(to_unit(raw))
        ctx = torch.stack([x[int(s):int(s) + task.in_len] for s in starts]).to(device)
        out.append(ldm.encode_frames(ldm.first_guess_frames(ctx)).cpu())
    return torch.stack(out)


def _first_guess_key(ldm: LatentDiffusion, data: WindowDataset, starts: np.ndarray) -> str:
    """What the first-guess latents depend on: the store's content, the split, the windows, the VAE's
    weights and the diffusion settings (SHA-256)."""
    import hashlib
    import json

    import zarr

    h = hashlib.sha256()
    attrs = dict(zarr.open_group(data.store, mode="r").attrs)
    h.update(json.dumps([attrs.get("fingerprint"), attrs.get("task"), data.task.name,
                         [int(e) for e in data.events], [int(s) for s in starts],
                         ldm.cfg.to_dict()], sort_keys=True, default=str).encode())
    for name, t in sorted(ldm.vae.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:24]


def _cached_first_guess(ldm: LatentDiffusion, data: WindowDataset, starts: np.ndarray, device,
                        progress: bool) -> torch.Tensor:
    """:func:`_first_guess_cache`, kept on disk under the cache directory (``first-guess/``) so that a
    resumed run does not spend a quarter of an hour on it again."""
    from ..foundation.cache import cache_dir
    from ..foundation.files import atomic_save

    path = cache_dir("first-guess", f"{_first_guess_key(ldm, data, starts)}.pt")
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged cache entry is computed again
            path.unlink(missing_ok=True)
    guess = _first_guess_cache(ldm, data, starts, device, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(guess, path)
    return guess


def _ldm_stage(cfg: TrainConfig, store: str, device: torch.device, progress: bool) -> Stage:
    check_init(cfg)
    vae = load_vae(cfg.init, device)
    _, ucfg, dcfg, _ = model_configs(cfg, frame_size(store))
    if vae.cfg.to_dict() != VAEConfig.from_dict(cfg.vae).to_dict():
        raise ValueError(f"the VAE in {cfg.init} does not match the config's vae section")
    data = WindowDataset(store, cfg.task, "train", augment=cfg.augment and not cfg.latent_cache, seed=cfg.seed)
    mean, std = _latent_statistics(cfg, vae, data, device, progress)
    src = None
    if cfg.warm_start is not None:
        src, dcfg = _warm_start(cfg, vae, ucfg, dcfg, device)
    if dcfg.scale_factor <= 0:       # auto: unit variance of the posterior samples (scale_by_std)
        dcfg = replace(dcfg, scale_factor=float(1.0 / (mean.var() + std.pow(2).mean()).sqrt()))
    mean, std = mean * dcfg.scale_factor, std * dcfg.scale_factor
    torch.manual_seed(cfg.seed)
    ldm = LatentDiffusion(vae, SpaceTimeUNet(ucfg), dcfg).to(device).train()
    if src is not None:
        with torch.no_grad():
            ldm.unet.load_state_dict(src.ldm.unet.state_dict())
            ldm.logvar.copy_(src.ldm.logvar)
    ema = EMA(ldm, cfg.ema_decay).to(device)
    trained = [p for p in ldm.parameters() if p.requires_grad]
    sample, compute = (_latent_batches(cfg, ldm, data, mean, std, device, progress) if cfg.latent_cache
                       else _frame_batches(cfg, ldm, data))
    validate = _forecast_validation(cfg, ldm, ema, _val_windows(store, cfg), device)
    extra = _ldm_provenance(cfg, src)

    def export(path, meta):
        with ema.swapped(ldm):
            save_model(path, ldm, cfg.task, meta={**meta, **extra})

    return Stage(modules={"ldm": ldm, "ema": ema}, params={"ldm": trained}, sample=sample, compute=compute,
                 lr=cfg.schedule(),
                 validate=validate, export=export, after_step=lambda: ema.update(ldm), optimizer=_optimizer(cfg))


def _latent_statistics(cfg: TrainConfig, vae, data, device, progress: bool) -> tuple:
    """``(mean, std)`` of the VAE posterior: of every training window (the latent cache), or of 32."""
    if cfg.latent_cache:
        return _latent_cache(vae, data, device, progress)
    some = [data[int(i)] for i in np.linspace(0, len(data) - 1, min(len(data), 32)).round()]
    with torch.no_grad():
        post = vae.encode(torch.cat([window_frames(it)[:, None] for it in some]).to(device))
    return post.mean.cpu(), post.std.cpu()


def _latent_batches(cfg: TrainConfig, ldm, data, mean, std, device, progress: bool) -> tuple:
    """``(sample, compute)`` on cached latents (and first guesses)."""
    task = get_task(cfg.task)
    stride = cfg.train_stride or task.stride
    starts = np.arange(0, mean.shape[1] - task.seq_len + 1, stride)
    guess = _cached_first_guess(ldm, data, starts, device, progress) if ldm.cfg.first_guess else None

    def sample(step, micro, rank):
            rng = np.random.default_rng(step_seed(cfg.seed, step, micro, rank, 2))
            ev = rng.integers(mean.shape[0], size=cfg.batch_size)
            si = rng.integers(len(starts), size=cfg.batch_size)
            sl = [slice(int(starts[i]), int(starts[i]) + task.seq_len) for i in si]
            m = torch.stack([mean[int(e), s] for e, s in zip(ev, sl)])
            sd = torch.stack([std[int(e), s] for e, s in zip(ev, sl)])
            z_c = m[:, :task.in_len]
            if guess is not None:
                z_c = torch.cat([z_c, torch.stack([guess[int(e), int(i)] for e, i in zip(ev, si)])], dim=1)
            return {"z_c": z_c, "mu": m[:, task.in_len:], "std": sd[:, task.in_len:]}

    def compute(b, step, generator):
        z_0 = b["mu"] + b["std"] * torch.randn(b["mu"].shape, generator=generator).to(b["mu"].device)
        loss, parts = ldm.loss_latents(b["z_c"], z_0, generator)
        return {"ldm": loss}, {"loss": loss.detach(), **parts}

    return sample, compute


def _frame_batches(cfg: TrainConfig, ldm, data) -> tuple:
    """``(sample, compute)`` on frames, encoded every step."""
    task = get_task(cfg.task)

    def sample(step, micro, rank):
        rng = np.random.default_rng(step_seed(cfg.seed, step, micro, rank, 2))
        return torch.stack([window_frames(data[int(i)]) for i in rng.integers(len(data), size=cfg.batch_size)])

    def compute(x, step, generator):
        loss, parts = ldm.loss(x[:, :task.in_len], x[:, task.in_len:], generator)
        return {"ldm": loss}, {"loss": loss.detach(), **parts}

    return sample, compute


def _forecast_validation(cfg: TrainConfig, ldm, ema, val: list, device):
    """``validate(step)``: scores of EMA forecasts (DDIM, ``val_steps``) of the validation windows: the
    members' and (``*_mean``) the ensemble mean's, which is what a deterministic forecast such as the
    extrapolation should be compared with."""
    task = get_task(cfg.task)

    @torch.no_grad()
    def validate(step):
        from ..verification.accumulate import EvaluationAccumulator

        def accumulator():
            return EvaluationAccumulator(n_lead=task.out_len, fss=False, lpips=None,
                                         lead_times=[task.frame_minutes * (i + 1) for i in range(task.out_len)])

        acc, mean_acc = accumulator(), accumulator()
        with ema.swapped(ldm):
            ldm.eval()
            for item in val:
                x = window_frames(item)[None].to(device)
                pred = ldm.forecast(x[:, :task.in_len], seeds=range(cfg.val_members), solver="ddim",
                                    steps=cfg.val_steps)
                target = _bytes(x[:, task.in_len:])
                acc.update(_bytes(pred), target)
                mean_acc.update(_bytes(pred.mean(dim=1)), target)      # the ensemble mean, one forecast
            ldm.train()
        mean = _scores(mean_acc)
        return {**_scores(acc), **{f"{k}_mean": mean[k] for k in ("CSI_M_pool16", "CRPS")}}

    return validate


def _ldm_provenance(cfg: TrainConfig, src) -> dict:
    """What an exported nowcaster records of its VAE and, when warm-started, of its starting denoiser."""
    from ..foundation.provenance import file_digest

    vae_meta = read_meta(cfg.init)
    extra = {"vae": vae_meta.get("vae", vae_meta)}      # init from a nowcaster: the provenance of its VAE
    if src is not None:                                  # the steps and time the denoiser had before this run
        extra["warm_start"] = {k: src.meta.get(k) for k in ("steps", "wall_time_s", "commit", "command",
                                                            "warm_start")}
        extra["warm_start"].update(model=src.path.name, model_sha256=file_digest(src.path))
    return extra


# -- align -----------------------------------------------------------------------------------------
def _align_stage(cfg: TrainConfig, store: str, device: torch.device) -> Stage:
    check_init(cfg)
    loaded = load_model(cfg.init, device)
    ldm = loaded.ldm
    acfg = model_configs(cfg, frame_size(store))[3]
    torch.manual_seed(cfg.seed)
    align = AlignmentNet(acfg).to(device).train()
    ema = EMA(align, cfg.ema_decay).to(device)
    task = get_task(cfg.task)
    data = WindowDataset(store, cfg.task, "train", augment=cfg.augment, seed=cfg.seed)

    def sample(step, micro, rank):
        rng = np.random.default_rng(step_seed(cfg.seed, step, micro, rank, 3))
        return torch.stack([window_frames(data[int(i)])[task.in_len:]
                            for i in rng.integers(len(data), size=cfg.batch_size)])

    def compute(target, step, generator):
        loss = alignment_loss(align, ldm, target, generator)
        return {"align": loss}, {"loss": loss.detach()}

    val = _val_windows(store, cfg)

    @torch.no_grad()
    def validate(step):
        g = torch.Generator().manual_seed(cfg.seed)
        with ema.swapped(align):
            align.eval()
            losses = [float(alignment_loss(align, ldm, window_frames(it)[None, task.in_len:].to(device), g)) for it in val]
            align.train()
        return {"align_MSE": float(np.mean(losses)) if losses else float("nan")}

    def export(path, meta):
        with ema.swapped(align):
            save_model(path, ldm, cfg.task, align=align, meta={**loaded.meta, "alignment": meta})

    return Stage(modules={"align": align, "ema": ema}, params={"align": list(align.parameters())}, sample=sample,
                 lr=cfg.schedule(),
                 compute=compute, validate=validate, export=export, after_step=lambda: ema.update(align),
                 optimizer=_optimizer(cfg))


def build_stage(cfg: TrainConfig, store: str, device: torch.device, progress: bool = True) -> Stage:
    """The :class:`Stage` for ``cfg.stage`` on a store."""
    if cfg.stage == "vae":
        return _vae_stage(cfg, store, device)
    if cfg.stage == "ldm":
        return _ldm_stage(cfg, store, device, progress)
    return _align_stage(cfg, store, device)
