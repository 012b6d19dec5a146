"""The latent diffusion nowcaster with one sampler, as a :class:`~.protocol.Nowcaster`."""

from __future__ import annotations

import numpy as np
import torch

from ..data.codec import from_unit, to_unit
from ..foundation.tasks import Grid, get_task

__all__ = ["DiffusionNowcaster"]


class DiffusionNowcaster:
    """A loaded model (:class:`~nowcast.models.model_files.LoadedModel`) and its sampler.

    Parameters
    ----------
    model : LoadedModel
        The nowcaster's networks.
    name : str
        The specification it was resolved from (reports use it).
    solver : str or nowcast.solvers.Solver
        ``'ddpm'`` for ancestral sampling, a solver name, or a (learned) solver instance.
    steps : int
        Sampler steps.
    options : dict, optional
        Further sampling options of a learned solver (``spacing``, ``afs``).
    device : str or torch.device
        Where the model runs.
    """

    def __init__(self, model, name: str, solver, steps: int, options: dict | None = None, device="cpu"):
        self.model, self.name, self.solver, self.steps = model, name, solver, int(steps)
        self.options = dict(options or {})
        self.device = torch.device(device)
        self.task = get_task(model.task)
        self.grid = Grid.sevir(self.task, model.frame_shape[0])

    @property
    def label(self) -> str:
        """``name`` for hand-crafted samplers; ``spanlift:WHERE`` for learned ones."""
        return self.name

    def warm_up(self) -> None:
        """One tiny forecast, so that one-time set-up costs (kernels, allocator) stay out of timings."""
        self.model.ldm.to(self.device).eval()
        with torch.no_grad():
            self.model.ldm.forecast(torch.zeros((1, self.task.in_len, *self.grid.shape), device=self.device),
                                    seeds=[0], solver="ddim", steps=1)

    def predict(self, context: np.ndarray, n_lead: int, members: int = 1, seed: int = 0,
                progress: bool = False) -> tuple:
        """``((B, M, n_lead, H, W) bytes, NFE)`` of ``(B, T, H, W)`` context bytes; member ``m`` uses
        seed ``seed + m``. ``progress`` shows a bar over the sampler's steps.

        Raises
        ------
        ValueError
            When ``n_lead`` is not the model's number of target frames.
        """
        if n_lead != self.task.out_len:
            raise ValueError(f"this model forecasts {self.task.out_len} lead times, not {n_lead}")
        x = torch.from_numpy(to_unit(context)).to(self.device)
        seeds = [seed + m for m in range(members)]
        out, nfe = self._sample(x, seeds, progress)
        return from_unit(out.cpu().numpy()), nfe          # 0–254: a forecast pixel is never 'missing'

    def _sample(self, x: torch.Tensor, seeds: list, progress: bool) -> tuple:
        kwargs = {**self.options, "return_nfe": True}
        if self.solver == "ddpm":                          # ancestral sampling shows its own bar
            return self.model.ldm.forecast(x, seeds=seeds, solver="ddpm", steps=self.steps, progress=progress,
                                           **kwargs)
        if not progress:
            return self.model.ldm.forecast(x, seeds=seeds, solver=self.solver, steps=self.steps, **kwargs)
        from tqdm.auto import tqdm

        from ..models.ldm import MEMBER_BATCH

        batches = -(-len(seeds) // MEMBER_BATCH)
        with tqdm(total=self.steps * batches, desc=f"forecast ({len(seeds)} members, {self.label})",
                  unit="step") as bar:
            return self.model.ldm.forecast(x, seeds=seeds, solver=self.solver, steps=self.steps,
                                           callback=lambda info: bar.update(1), **kwargs)
