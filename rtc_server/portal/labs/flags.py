"""Whether a result is out of range, from its interpretation or its reference range.

Pure functions, no I/O. A coded interpretation (HL7 v3 ObservationInterpretation:
H, L, HH, LL, A, N…) wins; without one, a numeric value is compared with the
reference range.
"""

from __future__ import annotations

from typing import Protocol

#: What the patient page shows for each flag.
FLAG_LABELS = {
    "H": "High", "HH": "Critically high", "L": "Low", "LL": "Critically low", "A": "Abnormal",
    "AA": "Critically abnormal",
}
_SAME = {"H": "H", "HU": "H", "HH": "HH", "L": "L", "LU": "L", "LL": "LL", "A": "A", "AA": "AA",
         "POS": "A", "DET": "A", "R": "A"}
_NORMAL = {"N", "NEG", "ND", "S"}


class Measured(Protocol):
    value_quantity: float | None
    reference_low: float | None
    reference_high: float | None
    interpretation_code: str | None


def flag_of(obs: Measured) -> str | None:
    """``H``, ``HH``, ``L``, ``LL``, ``A``, ``AA`` or None (in range, or nothing to compare)."""
    code = (obs.interpretation_code or "").strip().upper()
    if code in _SAME:
        return _SAME[code]
    if code in _NORMAL:
        return None
    value = obs.value_quantity
    if value is None:
        return None
    if obs.reference_low is not None and value < obs.reference_low:
        return "L"
    if obs.reference_high is not None and value > obs.reference_high:
        return "H"
    return None


def range_text(low: float | None, high: float | None, unit: str | None, text: str | None) -> str | None:
    """"4 to 5.6 %", "< 200 mg/dL", or the range's own text."""
    suffix = f" {unit}" if unit else ""
    if low is not None and high is not None:
        return f"{_num(low)} to {_num(high)}{suffix}"
    if high is not None:
        return f"< {_num(high)}{suffix}"
    if low is not None:
        return f"> {_num(low)}{suffix}"
    return text or None


def _num(value: float) -> str:
    return f"{value:g}"
