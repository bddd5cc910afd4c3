"""A case database in a foreign schema, as an approval department's system keeps it.

Upper-case table and column names (quoted on PostgreSQL, as an Oracle-born schema would
be), Chinese node names, and codes that the config's queries map with CASE WHEN.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

TABLES = {
    "SP_BJXX": (
        "PROJID",
        "SXBM",
        "SXMC",
        "SLBMDM",
        "SLBMMC",
        "SQSJ",
        "SLSJ",
        "CNSX",
        "CNSXDW",
        "FDSX",
        "BJSJ",
        "BJJG",
        "GXSJ",
    ),
    "SP_HJXX": ("HJID", "PROJID", "SPHJMC", "BLR", "JSSJ", "GXSJ"),
    "SP_TBCX": ("TBCXID", "PROJID", "TBCXZL", "TBCXKSRQ", "TBCXJSRQ", "TBCXSX", "GXSJ"),
}

CASES_QUERY = """
SELECT {q}PROJID{q} AS case_id, {q}SXBM{q} AS matter_code, {q}SXMC{q} AS matter_name,
       {q}SLBMDM{q} AS dept_code, {q}SLBMMC{q} AS dept_name, NULL AS applicant_id,
       {q}SQSJ{q} AS applied_at, {q}SLSJ{q} AS accepted_at,
       {q}CNSX{q} AS promised_limit, {q}FDSX{q} AS statutory_limit,
       CASE {q}CNSXDW{q} WHEN 'Z' THEN 'N' WHEN 'G' THEN 'W' WHEN '1' THEN 'W' END AS limit_unit,
       {q}BJSJ{q} AS completed_at, {q}BJJG{q} AS result, {q}GXSJ{q} AS updated_at
FROM {schema}{q}SP_BJXX{q}
"""
STEPS_QUERY = """
SELECT {q}HJID{q} AS step_id, {q}PROJID{q} AS case_id,
       CASE {q}SPHJMC{q} WHEN '受理' THEN 'accept' WHEN '承办' THEN 'review'
            WHEN '审核' THEN 'verify' WHEN '批准' THEN 'decide' WHEN '办结' THEN 'complete'
            ELSE {q}SPHJMC{q} END AS step_code,
       {q}SPHJMC{q} AS step_name, {q}BLR{q} AS handler_id, {q}JSSJ{q} AS finished_at,
       NULL AS result, {q}GXSJ{q} AS updated_at
FROM {schema}{q}SP_HJXX{q}
"""
PAUSES_QUERY = """
SELECT {q}TBCXID{q} AS pause_id, {q}PROJID{q} AS case_id,
       CASE {q}TBCXZL{q} WHEN 'A' THEN 'extension' WHEN 'F' THEN 'supplement'
            ELSE 'other' END AS kind,
       {q}TBCXKSRQ{q} AS started_at, {q}TBCXJSRQ{q} AS ended_at,
       CASE WHEN {q}TBCXZL{q} = 'A' THEN {q}TBCXSX{q} END AS granted_days,
       {q}GXSJ{q} AS updated_at
FROM {schema}{q}SP_TBCX{q}
"""


@dataclass
class ForeignSource:
    """A foreign-schema source and how to reach it."""

    engine: Engine  # a writable engine: the test plays the approval department
    url: str  # what watchdog's config points at
    schema_prefix: str
    quote: str

    def queries(self) -> dict[str, str]:
        fill = {"q": self.quote, "schema": self.schema_prefix}
        return {
            "cases": CASES_QUERY.format(**fill),
            "steps": STEPS_QUERY.format(**fill),
            "pauses": PAUSES_QUERY.format(**fill),
        }

    def insert(self, table: str, **values: Any) -> None:
        self.upsert(table, values)

    def upsert(self, table: str, values: dict[str, Any]) -> None:
        columns = TABLES[table]
        key = columns[0]
        q = self.quote
        names = ", ".join(f"{q}{c}{q}" for c in columns)
        marks = ", ".join(f":{c}" for c in columns)
        row = {c: values.get(c) for c in columns}
        with self.engine.begin() as connection:
            connection.execute(
                text(f"DELETE FROM {self.schema_prefix}{q}{table}{q} WHERE {q}{key}{q} = :k"),
                {"k": row[key]},
            )
            connection.execute(
                text(f"INSERT INTO {self.schema_prefix}{q}{table}{q} ({names}) VALUES ({marks})"),
                row,
            )


def _create_tables(engine: Engine, prefix: str, quote: str, timestamp: str) -> None:
    with engine.begin() as connection:
        for table, columns in TABLES.items():
            definitions = []
            for position, column in enumerate(columns):
                if column in {"CNSX", "FDSX", "TBCXSX"}:
                    kind = "INTEGER"
                elif column.endswith(("SJ", "RQ")):
                    kind = timestamp
                else:
                    kind = "VARCHAR(200)"
                primary = " PRIMARY KEY" if position == 0 else ""
                definitions.append(f"{quote}{column}{quote} {kind}{primary}")
            connection.execute(
                text(f"CREATE TABLE {prefix}{quote}{table}{quote} ({', '.join(definitions)})")
            )


def sqlite_source(folder: Path) -> ForeignSource:
    path = folder / "qzk.db"
    engine = create_engine(f"sqlite:///{path}")
    _create_tables(engine, "", "", "TEXT")
    return ForeignSource(engine, f"sqlite:///{path}", "", "")


def postgresql_source(database_url: str, schema: str) -> ForeignSource:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    # A real timestamp type (without zone): the values are local time in the source.
    _create_tables(engine, f'"{schema}".', '"', "TIMESTAMP")
    return ForeignSource(engine, database_url, f'"{schema}".', '"')


def backend_source(backend: str, tmp_path: Path, request: Any, schema_prefix: str) -> ForeignSource:
    """A foreign source on the test's backend: a SQLite file in `tmp_path`, or a schema
    of the session's PostgreSQL database named from the prefix and the test folder."""
    if backend == "sqlite":
        return sqlite_source(tmp_path)
    from tests.conftest import _pg_url

    database = request.getfixturevalue("pg_database")
    return postgresql_source(_pg_url(database), f"{schema_prefix}_{tmp_path.name[-12:].lower()}")
