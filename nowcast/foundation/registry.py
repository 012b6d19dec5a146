"""Registries: a name → object table looked up case-insensitively, with one clear error."""

from __future__ import annotations

__all__ = ["lookup"]


def lookup(table: dict, kind: str, name: str):
    """Case-insensitive registry lookup with one clear error listing the choices.

    Parameters
    ----------
    table : dict
        Lower-case names → entries.
    kind : str
        What the entries are (``"solver"``, ``"task"``, …), for the message.
    name : str
        The name asked for.

    Raises
    ------
    ValueError
        ``unknown <kind> '<name>'; available: [...]``.
    """
    key = name.lower()
    if key not in table:
        raise ValueError(f"unknown {kind} {name!r}; available: {sorted(table)}")
    return table[key]
