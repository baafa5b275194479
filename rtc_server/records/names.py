"""Name normalisation used to match a person who registers to the record on file.

People type their names without accents, with other capitalisation, or with a
hyphen where the record has a space; those must still match, so both sides are
compared in this folded form.
"""

from __future__ import annotations

import re
import unicodedata

_DROPPED = re.compile(r"['\u2019\u2018`.]")  # O'Brien == OBrien, "St." == "St"
_SEPARATORS = re.compile(r"[\W_]+")  # any script's letters and digits survive


def normalize_name(value: str | None) -> str:
    """Casefold, strip accents (NFKD), drop apostrophes and dots, and turn any
    other run of non-alphanumerics (hyphens, spaces) into one space."""
    if not value:
        return ""
    decomposed = unicodedata.normalize("NFKD", value)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    folded = _DROPPED.sub("", bare.casefold())
    return _SEPARATORS.sub(" ", folded).strip()
