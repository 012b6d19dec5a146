"""The latent diffusion nowcaster: PreDiff's diffusion set-up around a VAE and a space-time UNet.

* DDPM with ``T = 1000`` and β linear in √β from 1e-4 to 2e-2; ε-prediction; targets are VAE
  posterior samples of the future frames, the condition the posterior mode of the context frames
  (raw latents, scale factor 1, as PreDiff; ``scale_factor`` multiplies the latents as latent
  diffusion's ``scale_by_std`` does, so that they have unit variance).
* Optional first guess (``first_guess``, off in PreDiff): a non-learned nowcast of the target frames
  from the context (``"pysteps"``: Lagrangian extrapolation, as in cascaded deterministic + diffusion
  nowcasters such as CasCast) is encoded like the context and appended to the condition; the UNet
  (``guide`` on) sees it beside the noisy target latents. It costs no model evaluations.
  ``first_guess_history`` K > 1 feeds the Lagrangian history instead: the last K context frames each
  moved on to the target times, so that the UNet reads the recent evolution of the echo that reaches a
  pixel from the pixel itself (growth and decay), without tracking the motion. With
  ``residual`` the diffusion models the correction of the first guess g instead of the future itself:
  the ε-network sees ``z_t − √ᾱ_t·g`` (the noised correction ``z_0 − g``; its ε target is unchanged)
  and sampling starts from ``√ᾱ_T·g`` plus noise, so that x̂₀ = g + the denoised correction.
  ``first_guess_pixels`` then adds the decoded correction ``D(x̂₀) − D(g)`` to the first guess in
  pixels, so that the VAE's reconstruction error of the first guess stays out of the forecast.
* Loss: ``mean_batch[ mean((ε̂ − ε)²) / exp(γ_t) + γ_t ]`` with γ a learned per-timestep
  log-variance (initialised to 0); with ``prediction="v"`` the UNet predicts v (Salimans & Ho 2022)
  of the diffused quantity and the loss is on v̂ − v. Sampling sees an ε-model either way.
* Sampling goes through the solver core: the ε-network is adapted to a σ-space
  :class:`~nowcast.solvers.denoisers.VPDenoiser` whose condition is the context latents, and any
  solver of the core integrates it (DDIM = Euler on the DDIM grid by default); 1000-step ancestral
  DDPM is the reference. Each ensemble member has its own seed, so a member's forecast does not
  depend on the batch it was drawn in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..data.codec import to_unit
from ..foundation.config import DictRoundTrip
from ..solvers.ancestral import sample_ddpm
from ..solvers.denoisers import VPDenoiser, make_betas, vp_t_to_sigma
from ..solvers.registry import get_solver
from ..solvers.rollout import rollout
from ..solvers.schedules import vp_sigmas
from .alignment import AlignedEps
from .unet import SpaceTimeUNet
from .vae import FrameVAE

#: Members sampled and decoded together by :meth:`LatentDiffusion.forecast` (more run in turn).
MEMBER_BATCH = 16

__all__ = ["DiffusionConfig", "LatentDiffusion", "member_noise"]


@dataclass(frozen=True)
class DiffusionConfig(DictRoundTrip):
    """Diffusion settings (defaults: PreDiff's)."""

    timesteps: int = 1000
    beta_schedule: str = "sqrt_linear"
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    learn_logvar: bool = True
    scale_factor: float = 1.0        # latents seen by the diffusion = VAE latents × scale_factor
    first_guess: str = ""            # "" (none, PreDiff) or a baseline name ("pysteps") fed to a guide UNet
    residual: bool = False           # with a first guess g: diffuse the correction z_0 − g instead of z_0
    first_guess_history: int = 1     # the last K context frames moved on to the target times (UNet guide_stacks)
    first_guess_pixels: bool = False  # residual: forecast = first guess (pixels) + D(ẑ_0) − D(g), no VAE error on g
    prediction: str = "epsilon"      # what the UNet predicts: "epsilon" (PreDiff) or "v" (of the diffused quantity)


def member_noise(shape: tuple, seeds, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Standard normal noise ``(len(seeds), *shape)``, row ``i`` drawn from a generator seeded ``seeds[i]``."""
    rows = []
    for s in seeds:
        g = torch.Generator(device="cpu").manual_seed(int(s))
        rows.append(torch.randn(shape, generator=g, dtype=torch.float64))
    return torch.stack(rows).to(device=device, dtype=dtype)


PREDICTIONS = ("epsilon", "v")


class _EpsModel(nn.Module):
    """``model(x, t, cond) → ε̂``: the calling convention of the solver core, cond = context latents.

    With ``residual`` the condition ends with the first-guess latents g, and the UNet sees
    ``y = x − √ᾱ_t·g`` (ᾱ at fractional ``t`` as :class:`VPDenoiser` interpolates it); otherwise
    ``y = x``. With ``prediction="v"`` the UNet predicts ``v = √ᾱ·ε − √(1−ᾱ)·y₀`` of the diffused
    quantity ``y₀`` (the correction, or the latents) and ε̂ = √ᾱ·v̂ + √(1−ᾱ)·y: at high noise an error
    of the network then moves x̂₀ by about itself, where an ε-network's error is amplified by
    √((1−ᾱ)/ᾱ) (×14 at t = 950 of PreDiff's schedule) and x̂₀ falls back on g only if ε̂ is exact.
    """

    def __init__(self, unet: SpaceTimeUNet, alphas_cumprod: torch.Tensor, residual: bool = False,
                 prediction: str = "epsilon"):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {list(PREDICTIONS)}, got {prediction!r}")
        self.unet, self.residual, self.prediction = unet, residual, prediction
        ac = alphas_cumprod.to(torch.float64)
        self.register_buffer("log_sigmas", ((1 - ac) / ac).sqrt().log(), persistent=False)

    def parts(self, x, t, cond) -> tuple:
        """``(out, y, √ᾱ, √(1−ᾱ))``: the UNet's raw output on the input ``y`` it sees, and the
        schedule at ``t`` (broadcastable to ``x``)."""
        sigma = vp_t_to_sigma(self.log_sigmas, torch.as_tensor(t, device=x.device).reshape(-1))
        shape = (-1, *([1] * (x.dim() - 1)))
        a = (1 + sigma ** 2).rsqrt().to(x.dtype).view(shape)
        s = (sigma * (1 + sigma ** 2).rsqrt()).to(x.dtype).view(shape)
        y = x - a * cond[:, -x.shape[1]:] if self.residual else x
        return self.unet(y, t, cond), y, a, s

    def forward(self, x, t, cond):  # noqa: D102
        out, y, a, s = self.parts(x, t, cond)
        return out if self.prediction == "epsilon" else a * out + s * y


class LatentDiffusion(nn.Module):
    """VAE + ε-UNet + DDPM schedule.

    Parameters
    ----------
    vae : FrameVAE
        Frozen frame autoencoder.
    unet : SpaceTimeUNet
        The denoiser.
    cfg : DiffusionConfig
        Schedule and loss settings.
    """

    def __init__(self, vae: FrameVAE, unet: SpaceTimeUNet, cfg: DiffusionConfig = DiffusionConfig()):
        super().__init__()
        if bool(cfg.first_guess) != bool(unet.cfg.guide):
            raise ValueError(f"first_guess={cfg.first_guess!r} needs a UNet with guide={bool(cfg.first_guess)}, "
                             f"got guide={unet.cfg.guide}")
        if cfg.first_guess and cfg.first_guess_history != unet.cfg.guide_stacks:
            raise ValueError(f"first_guess_history={cfg.first_guess_history} needs a UNet with as many "
                             f"guide_stacks, got {unet.cfg.guide_stacks}")
        if cfg.first_guess_pixels and not cfg.residual:
            raise ValueError("first_guess_pixels=True adds a decoded correction to the first guess: set residual too")
        if cfg.residual and not cfg.first_guess:
            raise ValueError("residual=True diffuses the correction of a first guess: set first_guess too")
        self.cfg, self.vae, self.unet = cfg, vae, unet
        self._first_guess = None
        for p in self.vae.parameters():
            p.requires_grad_(False)
        betas = make_betas(cfg.beta_schedule, cfg.timesteps, cfg.beta_start, cfg.beta_end)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0), persistent=False)
        self.logvar = nn.Parameter(torch.zeros(cfg.timesteps), requires_grad=cfg.learn_logvar)
        self.eps_model = _EpsModel(unet, self.alphas_cumprod, cfg.residual, cfg.prediction)

    def train(self, mode: bool = True):  # the VAE stays frozen and in eval mode
        super().train(mode)
        self.vae.eval()
        return self

    # -- latents ---------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, T, H, W)`` frames in [0, 1] → posterior-mode latents ``(B, T, L, h, w)`` (scaled)."""
        dtype = next(self.vae.parameters()).dtype
        return self.vae.encode_sequence(frames[:, :, None].to(dtype), sample=False) * self.cfg.scale_factor

    def first_guess_frames(self, context: torch.Tensor) -> torch.Tensor:
        """The first guess ``(B, K·Tt, H, W)`` in [0, 1] of context frames ``(B, Tc, H, W)`` in [0, 1].

        With ``first_guess_history`` K = 1 it is the first-guess nowcast of the target frames; with
        K > 1 it is K such sequences of ``Tt`` frames, the last K context frames each moved on to the
        target times (the baseline's ``lagrangian_history``), the oldest first and the nowcast of the
        last frame last.

        Raises
        ------
        ValueError
            When the model has no first guess, or K > 1 with a baseline that has no Lagrangian history.
        """
        if not self.cfg.first_guess:
            raise ValueError("this model has no first guess (diffusion.first_guess is empty)")
        if self._first_guess is None:
            from ..baselines import get_baseline

            self._first_guess = get_baseline(self.cfg.first_guess)
        k, n_lead = self.cfg.first_guess_history, self.unet.cfg.target_frames
        ctx = np.rint(context.detach().float().clamp(0, 1).cpu().numpy() * 255.0).clip(0, 254).astype(np.uint8)
        if k == 1:
            guess = self._first_guess.forecast(ctx, n_lead)[:, 0]
        elif hasattr(self._first_guess, "lagrangian_history"):
            guess = self._first_guess.lagrangian_history(ctx, n_lead, k).reshape(ctx.shape[0], k * n_lead,
                                                                               *ctx.shape[2:])
        else:
            raise ValueError(f"first_guess_history={k} needs a first guess with a Lagrangian history, "
                             f"not {self.cfg.first_guess!r}")
        return torch.from_numpy(to_unit(guess, keep_missing=True)).to(context.device)

    @torch.no_grad()
    def encode_context(self, context: torch.Tensor, guess: torch.Tensor | None = None) -> torch.Tensor:
        """The condition of ``(B, Tc, H, W)`` context frames in [0, 1]: posterior-mode latents
        ``(B, Tc, L, h, w)``, followed with a first guess by its latents (``(B, Tc + K·Tt, L, h, w)``,
        the first-guess nowcast of the target frames last). ``guess``: the context's
        :meth:`first_guess_frames` when already computed."""
        z_c = self.encode_frames(context)
        if not self.cfg.first_guess:
            return z_c
        guess = self.first_guess_frames(context) if guess is None else guess
        return torch.cat([z_c, self.encode_frames(guess)], dim=1)

    @torch.no_grad()
    def encode_target(self, target: torch.Tensor, generator=None) -> torch.Tensor:
        """``(B, Tt, H, W)`` frames → posterior samples ``(B, Tt, L, h, w)`` (the diffusion targets)."""
        dtype = next(self.vae.parameters()).dtype
        z = self.vae.encode_sequence(target[:, :, None].to(dtype), sample=True, generator=generator)
        return z * self.cfg.scale_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, T, L, h, w)`` → frames ``(B, T, H, W)`` (linear VAE output, ~[0, 1])."""
        return self.vae.decode_sequence(z / self.cfg.scale_factor)[:, :, 0]

    # -- training --------------------------------------------------------------------------------
    def loss(self, context: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None,
             t: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """Diffusion loss on a batch of frames in [0, 1].

        Parameters
        ----------
        context, target : torch.Tensor
            ``(B, Tc, H, W)`` and ``(B, Tt, H, W)``.
        generator : torch.Generator, optional
            Source of the timesteps, the noise and the posterior samples.
        t : torch.Tensor, optional
            ``(B,)`` integer timesteps (drawn uniformly when not given).

        Returns
        -------
        loss : torch.Tensor
        parts : dict
            Detached ``simple`` (mean squared ε error) and ``logvar`` (mean γ_t).
        """
        z_c = self.encode_context(context)
        z_0 = self.encode_target(target, generator)
        return self.loss_latents(z_c, z_0, generator, t)

    def loss_latents(self, z_c: torch.Tensor, z_0: torch.Tensor, generator: torch.Generator | None = None,
                     t: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """:meth:`loss` on latents already encoded: context ``(B, Tc, L, h, w)``, target ``(B, Tt, L, h, w)``."""
        dev = next(self.unet.parameters()).device
        b = z_0.shape[0]
        if t is None:
            t = torch.randint(0, self.cfg.timesteps, (b,), generator=generator).to(dev)
        eps = torch.randn(z_0.shape, generator=generator).to(dev)
        ac = self.alphas_cumprod[t].view(b, 1, 1, 1, 1).to(z_0.dtype)
        z_t = ac.sqrt() * z_0 + (1 - ac).sqrt() * eps
        if self.cfg.prediction == "v":          # v of the diffused quantity: the correction z_0 − g, or z_0
            out, _, a, s = self.eps_model.parts(z_t, t.float(), z_c)
            y_0 = z_0 - z_c[:, -z_0.shape[1]:].to(z_0) if self.cfg.residual else z_0
            err = (out - (a * eps - s * y_0)).pow(2).mean(dim=(1, 2, 3, 4))
        else:
            err = (self.eps_model(z_t, t.float(), z_c) - eps).pow(2).mean(dim=(1, 2, 3, 4))
        gamma = self.logvar[t]
        loss = (err / gamma.exp() + gamma).mean()
        return loss, {"simple": err.mean().detach(), "logvar": gamma.mean().detach()}

    # -- sampling --------------------------------------------------------------------------------
    def denoiser(self, eps_model: Callable | None = None) -> VPDenoiser:
        """The ε-network as a σ-space denoiser ``D(x, σ, cond=z_c)`` for the solver core."""
        return VPDenoiser(eps_model or self.eps_model, self.alphas_cumprod, prediction="epsilon")

    def latent_shape(self) -> tuple:
        """``(Tt, L, h, w)`` of one forecast's latents."""
        c = self.unet.cfg
        return (c.target_frames, c.latent_channels, c.height, c.width)

    def solver_grid(self, steps: int, spacing: str = "leading", device=None) -> torch.Tensor:
        """The σ grid (``steps + 1`` points, float64) that ``steps`` DDIM-spaced solver steps follow."""
        return vp_sigmas(self.alphas_cumprod, steps, spacing).to(device or self.alphas_cumprod.device)

    def prior_state(self, noise: torch.Tensor, sigmas: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The σ-space start ``x = z_T·√(1 + σ_0²)`` of standard normal latents ``z_T`` (as diffusers
        starts DDIM from the VP prior); a ``residual`` model starts from its first guess plus that,
        ``x + g`` with ``g`` the tail of the condition ``cond`` (required then).

        Raises
        ------
        ValueError
            When the model is residual and ``cond`` is not given.
        """
        x = noise * (1 + sigmas[0].to(torch.float64) ** 2).sqrt().to(noise.dtype)
        if not self.cfg.residual:
            return x
        if cond is None:
            raise ValueError("a residual model starts from its first guess: pass the condition")
        return x + cond[:, -noise.shape[1]:].to(x)

    @torch.no_grad()
    def sample_latents(self, z_c: torch.Tensor, seeds, solver: str | object = "ddim", steps: int = 50,
                       spacing: str = "leading", progress: bool = False, alignment: dict | None = None,
                       return_nfe: bool = False, **rollout_kwargs):
        """Target latents for each context × seed.

        Parameters
        ----------
        z_c : torch.Tensor
            ``(B, Tc, L, h, w)`` context latents (the condition of :meth:`encode_context`).
        seeds : sequence of int
            One seed per member; member ``m`` of every context starts from the noise of ``seeds[m]``.
        solver : str or Solver
            ``'ddpm'`` for ancestral sampling, or any solver name/instance of the core (``'ddim'``
            is Euler on the DDIM grid).
        steps : int
            Number of steps (model evaluations for single-evaluation solvers).
        spacing : str
            DDIM/DDPM timestep spacing.
        alignment : dict, optional
            Knowledge-alignment guidance: ``{"net": AlignmentNet, "a_star": (B,) anticipated mean
            intensity in [0, 1] per context, "scale": λ}`` (see :mod:`.alignment`). Off by default.

        return_nfe : bool
            Also return the number of denoiser evaluations (counted by the sampler).

        Returns
        -------
        torch.Tensor
            ``(B, M, Tt, L, h, w)`` (and the NFE when ``return_nfe``).
        """
        b, m = z_c.shape[0], len(seeds)
        dev, dtype = z_c.device, z_c.dtype    # the ODE state follows the latents (float32 unless float64)
        noise = member_noise(self.latent_shape(), seeds, dtype, dev)               # (M, ...)
        x_T = noise[None].expand(b, *noise.shape).reshape(b * m, *noise.shape[1:])
        cond = z_c.repeat_interleave(m, dim=0)
        eps_model = self.eps_model
        if alignment is not None:
            a_star = torch.as_tensor(alignment["a_star"], dtype=torch.float64).reshape(-1).expand(b)
            eps_model = AlignedEps(self.eps_model, alignment["net"], self.alphas_cumprod,
                                   a_star.repeat_interleave(m), alignment.get("scale", 50.0))
        den = self.denoiser(eps_model)
        sigmas = self.solver_grid(steps, spacing, dev)
        if solver == "ddpm":
            gens = [torch.Generator().manual_seed(int(s) + 1_000_003) for s in seeds]

            def noise_fn(shape):
                draws = torch.stack([torch.randn(shape[1:], generator=g, dtype=torch.float64) for g in gens])
                return draws[None].expand(b, *draws.shape).reshape(shape).to(dev)

            if self.cfg.residual:                     # z_T = noise + √ᾱ_T·g in VP space
                x_T = x_T + (1 + sigmas[0].to(torch.float64) ** 2).rsqrt().to(x_T.dtype) * cond[:, -x_T.shape[1]:]
            z, nfe = sample_ddpm(den, x_T, steps=steps, spacing=spacing, cond=cond, noise_fn=noise_fn,
                                 progress=progress, return_nfe=True)
        else:
            solv = get_solver(solver) if isinstance(solver, str) else solver
            res = rollout(den, self.prior_state(x_T, sigmas, cond), sigmas, solv, cond=cond, **rollout_kwargs)
            z, nfe = res.x, res.nfe
        z = z.reshape(b, m, *z.shape[1:])
        return (z, nfe) if return_nfe else z

    @torch.no_grad()
    def forecast(self, context: torch.Tensor, seeds=(0,), solver="ddim", steps: int = 50, return_nfe: bool = False,
                 **kwargs):
        """Ensemble forecast ``(B, M, Tt, H, W)`` in [0, 1] (clamped) from context frames in [0, 1]
        (and the number of denoiser evaluations when ``return_nfe``); ``kwargs`` go to
        :meth:`sample_latents`.

        With ``first_guess_pixels`` each member is the first-guess nowcast P plus its decoded
        correction, ``P + D(ẑ_0) − D(g)``: a member with no correction is P itself, not P's VAE
        reconstruction.
        """
        guess = self.first_guess_frames(context) if self.cfg.first_guess else None
        z_c = self.encode_context(context, guess)
        seeds = list(seeds)
        base = None
        if self.cfg.first_guess_pixels:
            t = self.unet.cfg.target_frames
            base = guess[:, -t:] - self.decode(z_c[:, -t:].float())
        out, nfe = [], 0
        callback = kwargs.pop("callback", None)
        for i in range(0, len(seeds), MEMBER_BATCH):       # members in batches: memory stays flat
            chunk = seeds[i:i + MEMBER_BATCH]
            z, nfe = self.sample_latents(z_c, chunk, solver, steps, return_nfe=True,
                                         **({"callback": callback} if callback is not None else {}), **kwargs)
            b, m = z.shape[:2]
            x = self.decode(z.reshape(b * m, *z.shape[2:]).float())
            x = x.reshape(b, m, *x.shape[1:])
            if base is not None:
                x = x + base[:, None]
            out.append(x.clamp(0, 1))
        x = torch.cat(out, dim=1)
        return (x, nfe) if return_nfe else x
