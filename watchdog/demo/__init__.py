"""A synthetic county (东阳县) as a front-end exchange database (前置库) to watch.

`generate_demo_source` writes a SQLite file shaped like a provincial exchange standard
(INFO_CASE, INFO_PROCESS, INFO_SPECIAL, INFO_FEE, INFO_INSPECT) with realistic volume,
timing and a small share of injected violations, deterministically for a seed.
"""

from watchdog.demo.county import (
    DEMO_FEE_CATALOGUE,
    DEPARTMENTS,
    MATTERS,
    Department,
    FeeItem,
    Matter,
)
from watchdog.demo.source import TABLES, DemoSummary, generate_demo_source

__all__ = [
    "DEMO_FEE_CATALOGUE",
    "DEPARTMENTS",
    "MATTERS",
    "TABLES",
    "DemoSummary",
    "Department",
    "FeeItem",
    "Matter",
    "generate_demo_source",
]
