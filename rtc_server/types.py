"""Type aliases shared by services and transport (no framework imports)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

#: Largest id a database column holds (BIGINT); larger ids cannot exist.
MAX_ID = 2**63 - 1
#: A row id in a query or body: positive and storable (a 25-digit number is a 422, not a 500).
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]
