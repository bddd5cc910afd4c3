"""How the rows of a chunk of cases are selected from a table keyed by case id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam


def chunk_rows(source: str, case_ids: list[str], *, contiguous: bool) -> ChunkRows:
    """How to select the rows of a chunk's cases from a table keyed by case id.

    A chunk of a full pass holds every case of the source from its first id to its
    last (cases are read in case-id order), so the rows are those in that range, as
    the database orders ids: two parameters and an index range scan. Any other chunk
    names its ids, as an expanding IN list (coercing and rendering each id was about a
    tenth of a full evaluation). Rows of a case id not in the chunk (a step whose case
    is not stored) may come back from a range: callers look rows up by the chunk's ids.
    """
    if contiguous and case_ids:
        return ChunkRows(source, case_ids, (case_ids[0], case_ids[-1]))
    return ChunkRows(source, case_ids, None)


@dataclass(frozen=True)
class ChunkRows:
    """A chunk's cases as a condition on a table keyed by case id: by `bounds` (first
    and last id, inclusive) when set, else by the ids themselves."""

    source: str
    case_ids: list[str]
    bounds: tuple[str, str] | None

    def where(self, query: Any, table: Any) -> tuple[Any, dict[str, Any]]:
        """`query` restricted to the chunk's rows of `table`, and its parameters."""
        query = query.where(table.c.source == bindparam("source"))
        if self.bounds is None:
            query = query.where(table.c.case_id.in_(bindparam("ids", expanding=True)))
            return query, {"source": self.source, "ids": self.case_ids}
        query = query.where(
            table.c.case_id >= bindparam("low"), table.c.case_id <= bindparam("high")
        )
        low, high = self.bounds
        return query, {"source": self.source, "low": low, "high": high}
