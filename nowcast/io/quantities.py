"""Which radar quantity a file's variable holds — from its CF metadata, checked against its values —
and its conversion to the models' VIL bytes.

Quantities (:data:`QUANTITIES`):

* ``vil_bytes``: SEVIR's byte encoding (integers 0–254, 255 = no data);
* ``vil``: vertically integrated liquid, kg m⁻²;
* ``rain_rate``: mm h⁻¹ (also given as ``kg m-2 s-1``, ``mm s-1`` or ``m s-1``, converted);
* ``accumulation``: precipitation per time step, mm (``kg m-2`` with an *amount* standard name);
* ``reflectivity``: equivalent reflectivity factor, dBZ.

The variable is the one named (``variable=``), else the one whose ``standard_name`` or ``units``
say it is one of these, else the only ``(time, y, x)`` variable. ``_FillValue``, ``missing_value``
and NaN are *no data* (outside radar coverage) and become byte 255, never 0 (no rain). Units are
checked against the values: negative rain rates, VIL above SEVIR's 79.3 kg m⁻², reflectivity above
90 dBZ (raw bytes labelled dBZ), or a rate standard name with amount units are refused with a message that names the
likely mistake. Conversions go through :mod:`nowcast.data.codec` (Z–R law, the VIL proxy of a
4.5 km column).
"""

from __future__ import annotations

import re

import numpy as np

from ..data.codec import (MARSHALL_PALMER, MISSING, dbz_to_rain, dbz_to_vil, decode_vil, encode_vil, rain_to_dbz,
                          vil_to_dbz)

__all__ = ["QUANTITIES", "QuantityError", "identify", "to_vil_bytes", "from_vil_bytes", "plausibility",
           "EXPORT_UNITS", "NO_ECHO_DBZ", "to_quantity"]

#: Units an event can be written in, and the quantity, CF units and standard name each writes.
EXPORT_UNITS = {"vil": ("vil_bytes", "1", None), "kg m-2": ("vil", "kg m-2", None),
                "mm/h": ("rain_rate", "mm h-1", "rainfall_rate"),
                "dBZ": ("reflectivity", "dBZ", "equivalent_reflectivity_factor")}
#: Reflectivity written where there is no echo (radar files' "undetect"; it maps back to byte 0).
NO_ECHO_DBZ = -32.0

QUANTITIES = ("vil_bytes", "vil", "rain_rate", "accumulation", "reflectivity")

_STANDARD_NAMES = {
    "equivalent_reflectivity_factor": "reflectivity",
    "rainfall_rate": "rain_rate", "lwe_precipitation_rate": "rain_rate", "precipitation_flux": "rain_rate",
    "rainfall_flux": "rain_rate", "lwe_rainfall_rate": "rain_rate",
    "precipitation_amount": "accumulation", "lwe_thickness_of_precipitation_amount": "accumulation",
    "rainfall_amount": "accumulation", "thickness_of_rainfall_amount": "accumulation",
}
#: normalised unit → (quantity, factor to the quantity's unit)
_UNITS = {
    "dbz": ("reflectivity", 1.0), "dbze": ("reflectivity", 1.0),
    "mmh-1": ("rain_rate", 1.0), "mm/h": ("rain_rate", 1.0), "mmhr-1": ("rain_rate", 1.0),
    "mm/hr": ("rain_rate", 1.0), "mmh**-1": ("rain_rate", 1.0), "mm.h-1": ("rain_rate", 1.0),
    "mmh^-1": ("rain_rate", 1.0), "millimeter/hour": ("rain_rate", 1.0), "millimetersperhour": ("rain_rate", 1.0),
    "kgm-2s-1": ("rain_rate", 3600.0), "kgm**-2s**-1": ("rain_rate", 3600.0), "kg/m2/s": ("rain_rate", 3600.0),
    "mms-1": ("rain_rate", 3600.0), "mm/s": ("rain_rate", 3600.0), "ms-1": ("rain_rate", 3.6e6),
    "m/s": ("rain_rate", 3.6e6),
    "mm": ("accumulation", 1.0), "millimeter": ("accumulation", 1.0), "millimeters": ("accumulation", 1.0),
    "m": ("accumulation", 1000.0),
    "kgm-2": ("vil", 1.0), "kgm**-2": ("vil", 1.0), "kg/m2": ("vil", 1.0), "kgm^-2": ("vil", 1.0),
    "1": ("vil_bytes", 1.0), "": ("vil_bytes", 1.0),
}
_RATE_UNITS_HINT = "mm h-1 (or kg m-2 s-1)"
_CLEAR_AIR_KG = 4 / 90.66              # VIL of byte 6, the smallest byte that decodes to more than 0
_LABEL = {"vil_bytes": "SEVIR bytes", "vil": "VIL (or a precipitation amount)", "rain_rate": "a rain rate",
          "accumulation": "a precipitation amount", "reflectivity": "reflectivity"}


class QuantityError(ValueError):
    """A variable whose quantity cannot be told, or whose values contradict its units."""


def _norm(units: str) -> str:
    return re.sub(r"\s+", "", str(units)).lower()


def _quantity_of(name: str, attrs: dict, dtype) -> tuple | None:
    """``(quantity, factor)`` from a variable's metadata, or None when it says nothing."""
    std = str(attrs.get("standard_name", "")).strip()
    units = _norm(attrs.get("units", ""))
    by_unit = _UNITS.get(units)
    by_std = _STANDARD_NAMES.get(std)
    if by_std is not None:
        if by_unit is None:
            raise QuantityError(f"variable {name!r}: standard_name {std!r} with units {attrs.get('units')!r}, "
                                "which this package does not know; give its units as "
                                f"{_RATE_UNITS_HINT if by_std == 'rain_rate' else 'mm' if by_std == 'accumulation' else 'dBZ'}")
        if by_std == "accumulation" and by_unit[0] == "vil":     # kg m-2 of water is 1 mm
            return "accumulation", 1.0
        if by_unit[0] != by_std:
            raise QuantityError(f"variable {name!r}: standard_name {std!r} is a {by_std.replace('_', ' ')} but its "
                                f"units {attrs.get('units')!r} are those of {_LABEL[by_unit[0]]}; "
                                "correct the units (or the standard_name)")
        return by_unit
    if by_unit is None:
        return None
    if by_unit[0] == "vil_bytes" and not (np.dtype(dtype).kind in "ui" or name.lower() == "vil"):
        return None                                     # dimensionless floats say nothing
    return by_unit


def identify(ds, variable: str | None = None, name: str = "file") -> tuple:
    """The radar variable of a dataset and its quantity.

    Parameters
    ----------
    ds : xarray.Dataset
        The opened file (masked and scaled: fill values are NaN).
    variable : str, optional
        The variable to use (``--variable``); found from the metadata otherwise.
    name : str
        What to call the file in messages.

    Returns
    -------
    tuple
        ``(variable name, quantity, factor)``: values × factor are in the quantity's unit.

    Raises
    ------
    QuantityError
        When the variable is missing, none or several qualify, or metadata contradict each other.
    """
    try:
        return _identify(ds, variable, name)
    except QuantityError as e:
        msg = str(e)
        raise QuantityError(msg if msg.startswith(f"{name}:") else f"{name}: {msg}") from None


def _identify(ds, variable, name) -> tuple:
    fields = [v for v in ds.data_vars if ds[v].ndim == 3 and "time" in ds[v].dims]
    if variable is not None:
        if variable not in ds.data_vars:
            raise QuantityError(f"{name}: no variable {variable!r} (found {sorted(ds.data_vars)})")
        found = _quantity_of(variable, ds[variable].attrs, ds[variable].dtype)
        if found is None:
            raise QuantityError(f"{name}: variable {variable!r} has units {ds[variable].attrs.get('units')!r}, "
                                "which do not say what it is; expected dBZ, mm h-1, kg m-2 s-1, mm (per step), "
                                "kg m-2 (VIL) or SEVIR bytes")
        return (variable, *found)
    known = {v: q for v in fields if (q := _quantity_of(v, ds[v].attrs, ds[v].dtype)) is not None}
    if len(known) == 1:
        v, q = next(iter(known.items()))
        return v, *q
    if len(known) > 1:
        raise QuantityError(f"{name}: several radar variables ({', '.join(sorted(known))}); choose one with "
                            "--variable NAME")
    if not fields:
        raise QuantityError(f"{name}: no (time, y, x) variable (found {sorted(ds.data_vars)}); expected radar "
                            "frames such as rain rate, reflectivity or VIL")
    raise QuantityError(f"{name}: cannot tell what {', '.join(repr(f) for f in fields)} holds: give it units "
                        "(dBZ, mm h-1, mm per step, kg m-2 for VIL) or a CF standard_name, or name it with "
                        "--variable")


#: plausible (min, max) of each quantity in its unit
_RANGES = {"reflectivity": (-np.inf, 90.0), "rain_rate": (0.0, 600.0), "accumulation": (0.0, 200.0),
           "vil": (0.0, 80.0), "vil_bytes": (0.0, 255.0)}


def plausibility(values: np.ndarray, quantity: str, variable: str, name: str = "file") -> None:
    """Refuse values that cannot be the quantity (a clear message naming the likely mistake)."""
    bad = np.isposinf(values) | (np.isneginf(values) if quantity != "reflectivity" else False)
    if np.any(bad):                               # -inf dBZ is a radar's "no echo"; nothing else is infinite
        raise QuantityError(f"{name}: {variable!r} holds infinite values ({int(np.sum(bad))} pixels, e.g. "
                            f"{float(values[bad][0]):g}); no data must be NaN or the _FillValue")
    v = values[np.isfinite(values)]
    if v.size == 0:
        raise QuantityError(f"{name}: {variable!r} holds no data at all (every value is missing)")
    lo, hi = _RANGES[quantity]
    vmin, vmax = float(v.min()), float(v.max())
    if quantity == "rain_rate" and vmin < 0:
        raise QuantityError(f"{name}: {variable!r} is labelled a rain rate but has negative values (down to "
                            f"{vmin:g}); reflectivity in dBZ? Correct its units")
    if quantity == "vil" and vmax > hi:
        raise QuantityError(f"{name}: {variable!r} is labelled VIL in kg m-2 but reaches {vmax:g}; VIL above "
                            f"{hi:g} kg m-2 does not occur (SEVIR's scale ends at 79.3). Rain rate in mm/h? "
                            "Correct its units")
    if quantity == "vil_bytes" and (np.any(v != np.round(v)) or vmin < 0 or vmax > 255):
        raise QuantityError(f"{name}: {variable!r} is dimensionless but not SEVIR bytes (integers 0–254, 255 = "
                            f"no data; found {vmin:g} … {vmax:g}); give its units (mm h-1, dBZ, kg m-2, …)")
    if vmin < lo or vmax > hi:
        raise QuantityError(f"{name}: {variable!r} as {quantity.replace('_', ' ')} ranges {vmin:g} … {vmax:g}, "
                            f"outside the plausible {lo:g} … {hi:g}; check its units")


def to_vil_bytes(values, quantity: str, factor: float = 1.0, step_minutes: float | None = None,
                 zr=MARSHALL_PALMER, variable: str = "data", name: str = "file") -> np.ndarray:
    """Values of a quantity → VIL bytes (255 where there is no data).

    Parameters
    ----------
    values : array-like
        The variable's values (NaN = no data).
    quantity, factor
        From :func:`identify`.
    step_minutes : float, optional
        The time step, needed for ``accumulation`` (mm per step → mm h⁻¹).
    zr : tuple of float
        ``(a, b)`` of the Z–R law for rain rates.
    """
    x = np.asarray(values, dtype=np.float64) * factor
    if quantity == "vil_bytes":
        plausibility(x, quantity, variable, name)
        if np.isnan(x).any():
            x = np.where(np.isnan(x), MISSING, x)
        return x.astype(np.uint8)
    plausibility(x, quantity, variable, name)
    if quantity == "accumulation":
        if not step_minutes:
            raise QuantityError(f"{name}: {variable!r} is an accumulation; its time step is needed to make it a rate")
        x = x * 60.0 / step_minutes
        quantity = "rain_rate"
    if quantity == "rain_rate":
        x = rain_to_dbz(x, zr)
        quantity = "reflectivity"
    if quantity == "reflectivity":
        x = dbz_to_vil(x)                                  # −inf dBZ (no rain) → 0 kg m-2
    # below byte 6 every byte decodes to 0 kg m-2: clear air is byte 0, as SEVIR writes it
    return encode_vil(np.where(x < _CLEAR_AIR_KG, 0.0, x))


def to_quantity(data, quantity: str, factor: float = 1.0, step_minutes: float | None = None,
                zr=MARSHALL_PALMER) -> np.ndarray:
    """VIL bytes → values of a quantity in a file's unit, the inverse of :func:`to_vil_bytes`.

    Parameters
    ----------
    data : array-like of uint8
        VIL bytes (255 = no data).
    quantity, factor
        As :func:`identify` gives them: the values are written in the file's unit (quantity's unit / factor).
    step_minutes : float, optional
        The time step an ``accumulation`` is summed over.
    zr : tuple of float
        ``(a, b)`` of the Z–R law.

    Returns
    -------
    numpy.ndarray
        uint8 bytes for ``vil_bytes``; else float32 with NaN where there is no data (reflectivity
        where there is no echo: :data:`NO_ECHO_DBZ`).
    """
    b = np.asarray(data)
    if quantity == "vil_bytes":
        return b.astype(np.uint8)
    kg = decode_vil(b).astype(np.float64)                       # NaN where 255
    if quantity == "vil":
        return (kg / factor).astype(np.float32)
    dbz = vil_to_dbz(kg)                                        # −inf where no liquid
    if quantity == "reflectivity":
        return (np.where(np.isneginf(dbz), NO_ECHO_DBZ, dbz) / factor).astype(np.float32)
    rate = dbz_to_rain(dbz, zr)
    if quantity == "accumulation":
        if not step_minutes:
            raise ValueError("an accumulation needs the time step it is summed over")
        rate = rate * step_minutes / 60.0
    elif quantity != "rain_rate":
        raise ValueError(f"unknown quantity {quantity!r}; one of {QUANTITIES}")
    return (rate / factor).astype(np.float32)


def from_vil_bytes(data, units: str, zr=MARSHALL_PALMER) -> tuple:
    """VIL bytes → values in ``units`` (see :data:`EXPORT_UNITS`), the inverse of :func:`to_vil_bytes`.

    Returns
    -------
    tuple
        ``(values, attrs)``: float32 values (NaN where the byte is 255, no data; bytes as they are for
        ``vil``) and the CF attributes (``units``, ``standard_name``, ``long_name``, and ``comment``
        saying how they were derived).
    """
    if units not in EXPORT_UNITS:
        raise ValueError(f"unknown units {units!r}; choose from {sorted(EXPORT_UNITS)}")
    quantity, cf_units, std = EXPORT_UNITS[units]
    values = to_quantity(data, quantity, 1.0, None, zr)
    if quantity == "vil_bytes":
        return values, {"units": "1"}
    attrs = {"units": cf_units}
    if quantity == "vil":
        return values, {**attrs, "long_name": "vertically integrated liquid"}
    note = "from SEVIR VIL through the VIL proxy of a 4.5 km column"
    if quantity == "reflectivity":
        return values, {**attrs, "standard_name": std, "long_name": "equivalent reflectivity factor",
                        "comment": f"{note}; {NO_ECHO_DBZ:g} dBZ = no echo"}
    a, b_ = zr
    return values, {**attrs, "standard_name": std, "long_name": "rain rate",
                    "comment": f"{note} and the Z-R law Z = {a:g} R^{b_:g}"}
