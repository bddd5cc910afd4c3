"""Chunks of cases: which cases a pass reads, and how the rows of a chunk are selected
from a table keyed by case id."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, select

from watchdog.store import schema


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


def case_chunks(
    store: Engine,
    source: str,
    columns: Sequence[str],
    touched: Any | None,
    cases_range: tuple[str | None, str | None] | None = None,
    size: int = 2000,
) -> Iterator[list[dict[str, Any]]]:
    """The source's cases (those `columns` of them) in chunks of `size`, in case-id order:
    every case when `touched` is None (a full pass, only those in `cases_range` if
    given), else the cases whose ids the query `touched` selects.

    The touched ids are read first and the cases then looked up by key, chunk by chunk.
    As one query (`case_id IN (touched)`), PostgreSQL planned from statistics that did
    not know a county loaded after the last ANALYZE (one row expected): it compared
    each of the county's 100,000 cases with each touched id, 10.6 s of a cycle in a
    10M-case province store. Looked up by key, the plan cannot go that wrong.
    """
    cases = schema.cases
    selected = select(*(cases.c[name] for name in columns)).where(cases.c.source == source)
    with store.connect() as connection:
        if touched is None:
            query = selected
            if cases_range is not None:
                low, high = cases_range
                if low is not None:
                    query = query.where(cases.c.case_id >= low)
                if high is not None:
                    query = query.where(cases.c.case_id < high)
            rows = connection.execution_options(yield_per=size).execute(
                query.order_by(cases.c.case_id)
            )
            keys = tuple(rows.keys())
            # Plain tuples zipped into dicts: dict(RowMapping) per row cost several
            # times more, a million times over.
            for partition in rows.partitions(size):
                yield [dict(zip(keys, row, strict=True)) for row in partition]
            return
        ids = sorted(set(connection.scalars(touched)))
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            rows = connection.execute(
                selected.where(cases.c.case_id.in_(chunk)).order_by(cases.c.case_id)
            )
            keys = tuple(rows.keys())
            yield [dict(zip(keys, row, strict=True)) for row in rows]
