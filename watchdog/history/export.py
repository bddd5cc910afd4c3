"""Exports of violation records: CSV for Excel, JSONL for tools. Both round-trip.

CSV: UTF-8 with a byte order mark (without it Excel on a Chinese Windows reads UTF-8
as GBK and the department names turn to mojibake), CRLF line ends, one column per
field and the evidence as one JSON cell. A text cell starting with `=`, `+`, `-`, `@`
or a tab would be run as a formula by Excel (source data is not ours to trust), so
such cells — and cells starting with `'`, to keep the escape reversible — get a
leading `'`; `read_csv` takes it off again.

JSONL: one JSON object per line, exactly the API's record, non-ASCII kept as is.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

BOM = "\ufeff"
CSV_COLUMNS = (
    "id",
    "rule",
    "kind",
    "finding",
    "severity",
    "state",
    "source",
    "case_id",
    "subject",
    "dept_code",
    "dept_name",
    "matter_code",
    "matter_name",
    "accepted_at",
    "completed_at",
    "opened_at",
    "last_seen_at",
    "resolved_at",
    "due_date",
    "provisional",
    "evidence",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
FORMATS = ("csv", "jsonl")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


# Records per piece: a streamed HTTP response moves each piece through a thread hop,
# which costs more than formatting one record, so pieces carry many.
CHUNK_RECORDS = 500


def csv_chunks(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The CSV file in pieces: BOM and header first, then CHUNK_RECORDS rows a piece."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield BOM + buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    rows = 0
    for record in records:
        writer.writerow([_cell(record.get(column)) for column in CSV_COLUMNS])
        rows += 1
        if rows == CHUNK_RECORDS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            rows = 0
    if rows:
        yield buffer.getvalue()


def jsonl_chunks(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    lines: list[str] = []
    for record in records:
        lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        if len(lines) == CHUNK_RECORDS:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)


def chunks(records: Iterable[dict[str, Any]], export_format: str) -> Iterator[str]:
    if export_format == "csv":
        return csv_chunks(records)
    if export_format == "jsonl":
        return jsonl_chunks(records)
    raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {export_format!r}")


def write(records: Iterable[dict[str, Any]], export_format: str, out: TextIO) -> int:
    """Write every record; return how many were written."""
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for record in records:
            count += 1
            yield record

    for piece in chunks(counted(), export_format):
        out.write(piece)
    return count


def _value(column: str, text: str) -> Any:
    if text == "":
        return None
    if column == "id":
        return int(text)
    if column == "provisional":
        return text == "true"
    if column == "evidence":
        return json.loads(text)
    return text[1:] if text.startswith("'") else text


def read_csv(text: str) -> list[dict[str, Any]]:
    """Records back from an export's CSV text (BOM included or not)."""
    rows = csv.reader(io.StringIO(text.removeprefix(BOM), newline=""))
    header = next(rows)
    return [
        {column: _value(column, cell) for column, cell in zip(header, row, strict=True)}
        for row in rows
    ]


def read_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
