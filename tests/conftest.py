"""Shared fixtures: a real store on SQLite and on PostgreSQL.

PostgreSQL runs at 127.0.0.1:5432 (user postgres, trust auth) on this machine kind.
Each test run creates a database of its own and drops it afterwards; each test gets a
fresh schema in it. When CI=true an unreachable PostgreSQL fails the run instead of
skipping its tests.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text

from watchdog.store.database import create_store_engine, upgrade_store

PG_ADMIN_URL = os.environ.get("WATCHDOG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_schema_numbers = itertools.count(1)


def _pg_url(database: str, *, driver: str = "postgresql+psycopg") -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", f"{driver}://", 1)
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database for this test run; the name of it."""
    name = f"watchdog_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(message)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_schema_engine(database: str, schema: str) -> Engine:
    """An engine whose unqualified names resolve in `schema` (created if missing)."""
    url = _pg_url(database)
    with create_engine(url).begin() as connection:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return create_engine(url, connect_args={"options": f"-c search_path={schema}"})


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of an empty store (no schema yet) on the parametrized backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    database = request.getfixturevalue("pg_database")
    schema = f"store_{next(_schema_numbers)}"
    pg_schema_engine(database, schema).dispose()
    yield _pg_url(database) + f"?options=-csearch_path%3D{schema}"


@pytest.fixture
def store(store_url: str) -> Iterator[Engine]:
    """A migrated, empty store."""
    engine = create_store_engine(store_url)
    upgrade_store(engine)
    yield engine
    engine.dispose()
