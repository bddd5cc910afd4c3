"""BulkUpsert: many rows per statement on SQLite, the same outcome on both stores."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, create_engine, select

from watchdog.store import schema
from watchdog.store.encoding import encoding_for
from watchdog.store.upsert import SQLITE_MAX_VARIABLES, BulkUpsert

COLUMNS = ("source", *(c.name for c in schema.cases.columns if c.name != "source"))


def cases_upsert(store: Engine) -> BulkUpsert:
    names = [c for c in COLUMNS if c not in ("source", "case_id", "change_seq", "updated_at")]
    return BulkUpsert(
        store.dialect, schema.cases, COLUMNS, key=("source", "case_id"), compared=tuple(names)
    )


def case_row(store: Engine, number: int, seq: int, limit: int = 5) -> tuple[object, ...]:
    moment = encoding_for(store.dialect.name).timestamp(datetime(2026, 3, 2, 2, 0))
    values = {
        "source": "north",
        "case_id": f"C{number:05d}",
        "dept_code": "SCJGJ",
        "promised_limit": limit,
        "limit_unit": "W",
        "updated_at": moment,
        "change_seq": seq,
    }
    return tuple(values.get(name) for name in COLUMNS)


def stored(store: Engine) -> dict[str, tuple[int, int]]:
    table = schema.cases
    with store.connect() as connection:
        found = connection.execute(
            select(table.c.case_id, table.c.promised_limit, table.c.change_seq)
        )
        return {case_id: (limit, seq) for case_id, limit, seq in found}


def test_rows_beyond_whole_statements_are_stored_and_only_changed_rows_are_updated(
    store: Engine,
) -> None:
    upsert = cases_upsert(store)
    count = 2 * upsert.rows_per_statement + 345  # two full statements and a rest
    with store.begin() as connection:
        upsert.execute(connection, upsert.prepare([case_row(store, n, 1) for n in range(count)]))
    assert stored(store) == {f"C{n:05d}": (5, 1) for n in range(count)}

    # Read again in a later poll: one row changed, and one appears twice in the batch.
    again = [case_row(store, n, 2, limit=9 if n == 7 else 5) for n in range(count)]
    again.append(case_row(store, 3, 2, limit=6))
    with store.begin() as connection:
        upsert.execute(connection, upsert.prepare(again))
    expected = {f"C{n:05d}": (5, 1) for n in range(count)}
    expected["C00007"] = (9, 2)
    expected["C00003"] = (6, 2)  # the later occurrence wins, as with one row at a time
    assert stored(store) == expected


def test_a_wide_table_takes_fewer_rows_per_statement_than_sqlite_binds_variables() -> None:
    wide = Table(
        "wide",
        MetaData(),
        Column("id", Integer, primary_key=True),
        *(Column(f"c{i}", String(8)) for i in range(59)),
    )
    names = tuple(c.name for c in wide.columns)
    engine = create_engine("sqlite://")
    wide.create(engine)
    upsert = BulkUpsert(engine.dialect, wide, names, key=("id",), compared=names[1:])
    assert upsert.rows_per_statement * len(names) <= SQLITE_MAX_VARIABLES
    rows = [(n, *(f"v{n}" for _ in range(59))) for n in range(1_500)]
    with engine.begin() as connection:
        upsert.execute(connection, upsert.prepare(rows))
        assert connection.scalar(select(wide.c.c58).where(wide.c.id == 1_499)) == "v1499"
        assert len(connection.execute(select(wide.c.id)).all()) == 1_500


def test_batches_of_any_size_use_the_same_few_statements() -> None:
    # SQLite compiles each distinct statement text; one per batch size was compiled anew
    # for every small batch of an incremental poll.
    engine = create_engine("sqlite://")
    upsert = BulkUpsert(
        engine.dialect, schema.cases, COLUMNS, key=("source", "case_id"), compared=("dept_code",)
    )
    texts: set[str] = set()
    for count in (1, 17, 300, 2_000, upsert.rows_per_statement + 5):
        prepared = upsert.prepare([tuple(range(len(COLUMNS)))] * count)
        texts |= {sql for sql, _ in prepared}
        rows_bound = sum(
            len(values) // len(COLUMNS) for _, parameters in prepared for values in parameters
        )
        assert rows_bound == count  # every row, once
    assert len(texts) <= 4
