"""Scoring sample sets of the CPU image benchmarks: FID (Inception-v3 of the offline wheel), the
Fréchet distance on a classifier trained on the data (a second feature space) and RMSE to a
teacher, cached on disk so that an interrupted benchmark resumes from the sets it finished."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch

from ..foundation.files import atomic_write_text
from .datasets import ImageSet
from .features import train_classifier_features
from .fid import FeatureStats, compute_features, frechet_distance, inception_extractor

__all__ = ["ScoreCache", "Scorer"]


class ScoreCache:
    """Scores and reference statistics already computed, under ``root``.

    FID needs Inception features of every sample set (≈ 0.25 s per image on 2 CPU cores), so an
    interrupted benchmark resumes from the sets it finished. Entries are keyed by everything that
    determines them: ``common`` (the model file's SHA-256, the data, the test noise …) and the
    record itself (solver, schedule, NFE, training run).
    """

    def __init__(self, root: Path, common: dict):
        self.root = Path(root)
        self.common = common

    def _path(self, ident: dict, suffix: str) -> Path:
        blob = json.dumps({**self.common, **ident}, sort_keys=True)
        return self.root / f"{hashlib.sha256(blob.encode()).hexdigest()[:20]}{suffix}"

    def scores(self, ident: dict) -> dict:
        """The cached scores of a record (empty when none)."""
        path = self._path(ident, ".json")
        return json.loads(path.read_text())["scores"] if path.is_file() else {}

    def put_scores(self, ident: dict, scores: dict) -> None:
        """Cache a record's scores."""
        path = self._path(ident, ".json")
        atomic_write_text(path, json.dumps({"ident": {**self.common, **ident}, "scores": scores}, indent=1) + "\n")

    def stats(self, ident: dict, compute: Callable[[], FeatureStats]) -> FeatureStats:
        """Cached feature statistics, computed once."""
        path = self._path(ident, ".npz")
        if path.is_file():
            return FeatureStats.load(path)
        st = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        st.save(path)
        return st


class Scorer:
    """Feature spaces and the data's reference statistics; scores sample sets through a cache.

    Parameters
    ----------
    data : ImageSet
        The labelled image set (its classifier is trained here, seeded).
    cache : ScoreCache
        Where scores and statistics are kept.
    fid : bool
        Also compute the Inception FID.
    seed : int
        Seed of the classifier.
    """

    def __init__(self, data: ImageSet, cache: ScoreCache, fid: bool = True, seed: int = 0):
        self.cache = cache
        clf, self.classifier_accuracy = train_classifier_features(data.images, data.labels, seed=seed)
        self.extractors = {"fd_classifier": clf.features}
        if fid:
            self.extractors["fid"] = inception_extractor()
        self.ref = {k: cache.stats({"reference": data.name, "metric": k},
                                   lambda f=f: self.stats(data.uint8(), f)) for k, f in self.extractors.items()}

    @staticmethod
    def stats(images: torch.Tensor, extractor) -> FeatureStats:
        """Feature statistics of images (``[−1, 1]`` floats or ``uint8``)."""
        return FeatureStats.from_features(compute_features(images, extractor), keep=False)

    def score(self, ident: dict, make_images: Callable[[], tuple], target: torch.Tensor | None) -> dict:
        """Scores (and NFE) of a sample set, sampling and computing only what the cache lacks.

        Parameters
        ----------
        ident : dict
            What identifies the record in the cache.
        make_images : callable
            ``make_images() → (images, nfe)``, or ``(images, nfe, extra)`` with a dict of further
            figures to keep (e.g. block-evaluations, seconds).
        target : torch.Tensor, optional
            Reference endpoints for the RMSE.

        Returns
        -------
        dict
            ``nfe``, every feature space's distance, ``rmse`` (with a target) and the extras.
        """
        out = self.cache.scores(ident)
        missing = [k for k in self.extractors if k not in out] + ([] if "rmse" in out or target is None else ["rmse"])
        if missing or "nfe" not in out:
            made = make_images()
            images, out["nfe"] = made[0], made[1]
            if len(made) > 2:
                out.update(made[2])
            for k in missing:
                out[k] = (float((images - target).pow(2).mean().sqrt()) if k == "rmse"
                          else frechet_distance(self.stats(images, self.extractors[k]), self.ref[k]))
            self.cache.put_scores(ident, out)
        keys = ["nfe"] + list(self.extractors) + (["rmse"] if target is not None else [])
        return {**{k: v for k, v in out.items() if k not in keys}, **{k: out[k] for k in keys}}
