"""Configuration dataclasses: a shared plain-dict round trip (for checkpoints and YAML)."""

from __future__ import annotations

from dataclasses import fields

__all__ = ["DictRoundTrip"]


class DictRoundTrip:
    """Mixin for frozen dataclass configs: ``to_dict`` (tuples as lists) and ``from_dict``."""

    def to_dict(self) -> dict:
        """Plain-Python form: tuples become lists."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict):
        """Inverse of :meth:`to_dict`; unknown keys are an error naming the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
