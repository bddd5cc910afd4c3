"""The chain as JSON Lines, hashes included, for verification elsewhere.

One entry per line, in seq order, with every hashed field as it was hashed (instants as
canonical text) plus prev_hash and hash: an outside script re-verifies a file with the
recipe in README "Audit trail" and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from watchdog.audit.chain import body_of

FIELDS = (
    *("seq", "at", "recorded_at", "actor", "entity", "entity_id", "action", "payload"),
    "prev_hash",
    "hash",
)


def export_record(row: Mapping[str, Any]) -> dict[str, Any]:
    return {**body_of(row), "prev_hash": row["prev_hash"], "hash": row["hash"]}


def write_jsonl(rows: Iterable[Mapping[str, Any]], out: IO[str]) -> int:
    """Write the entries; return how many."""
    count = 0
    for row in rows:
        out.write(json.dumps(export_record(row), ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The entries of an exported file; a line that is not an entry names its number."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {number}: not JSON: {exc}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}: line {number}: not an audit entry (not an object)")
            missing = sorted(set(FIELDS) - set(record))
            if missing:
                raise ValueError(f"{path}: line {number}: missing {', '.join(missing)}")
            yield record


def last_entry(path: Path) -> tuple[int, str]:
    """(seq, hash) of an export's last entry: an anchor for a later verification."""
    last: tuple[int, str] = (0, "")
    for record in read_jsonl(path):
        last = (int(record["seq"]), str(record["hash"]))
    return last
