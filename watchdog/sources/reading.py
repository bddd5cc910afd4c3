"""Reading one entity's rows from a source: fetched in batches and validated into the
store's form, in this process or in a reading process of its own.

Reading and validating a row costs about as much CPU as storing it (a first load of
1M cases, 5.5M rows: fetch ~15 s, validation ~17 s, storing ~26 s). In one process
the two share the GIL, so a long read hands what is left of it to a child process
(`read_in_process`), which fetches and validates while this process stores. The child
resumes the same query from the last `updated_at` read here: the rows sharing that
time are read twice, and the second copy changes nothing (the store's upsert leaves
unchanged rows alone). Short reads, the daemon's usual cycle, never start a process.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any

from sqlalchemy import CursorResult, text
from sqlalchemy.exc import SQLAlchemyError

from watchdog.config import SourceSettings
from watchdog.errors import first_line
from watchdog.sources.entities import ENTITIES
from watchdog.sources.validation import RowValidator
from watchdog.sources.writer import Batch
from watchdog.store.encoding import encoding_for

log = logging.getLogger(__name__)

# Rows read in this process before the rest of a read moves to a reading process. A
# process costs ~0.5 s to start (a fresh interpreter importing the reading modules);
# these rows take ~2 s to read and store, and a read longer than that gains more from
# the overlap than the start costs. A daemon's usual cycle reads far fewer.
HANDOVER_ROWS = 200_000


class ReadError(Exception):
    """Reading failed in the reading process; the message says how, in one line."""


def driver_batches(rows: CursorResult[Any], size: int) -> Iterator[Sequence[Sequence[Any]]]:
    """The result's rows in batches of `size`, as the driver returns them (tuples).

    `Result.partitions` would wrap every row in a SQLAlchemy `Row`, which cost 4.5 s of a
    5.5M-row first load (the driver's own fetchmany: ~14 s) for nothing the validator
    uses. This asks the result's fetch strategy, as `partitions` itself does, so rows a
    server-side cursor fetched ahead are not lost, driver errors are wrapped and
    handled (a lost connection is invalidated) as on any other read, and the cursor is
    closed at the end.
    """
    # Both are looked up anew each time: at the end of the rows the result closes its
    # cursor and puts a strategy in place that returns nothing.
    while batch := rows.cursor_strategy.fetchmany(rows, rows.cursor, size):
        yield batch


def validate_batch(
    validator: RowValidator, columns: Sequence[str], raw_batch: Sequence[Sequence[Any]]
) -> Batch:
    """Store rows (source, canonical values, change_seq) of one batch."""
    batch = Batch(read=len(raw_batch))
    good, bad = batch.rows, batch.bad
    validate = validator.validate_values
    for raw in raw_batch:
        row = validate(raw)
        if isinstance(row, str):
            bad.append((dict(zip(columns, raw, strict=True)), row))
        else:
            good.append(row)
    # A query whose join repeats a key would make one upsert touch a row twice, which
    # PostgreSQL refuses for the whole batch: keep the newest occurrence (rows come in
    # updated_at order, so the last one).
    keys = {row[1] for row in good}
    if len(keys) < len(good):
        batch.repeated = len(good) - len(keys)
        batch.rows = good = list({row[1]: row for row in good}.values())
    # updated_at is the last canonical value, just before change_seq.
    batch.newest = max((row[-2] for row in good), default=None)
    return batch


@dataclass(frozen=True)
class ReadRequest:
    """What a reading process needs: everything here crosses to it pickled."""

    source: SourceSettings  # with `queries` a plain dict: a mapping proxy cannot be pickled
    entity: str
    sql: str  # the wrapped query, with a condition on :since
    params: dict[str, Any]
    columns: tuple[str, ...]  # the query's columns as first read, lower-cased
    store_dialect: str
    before: tuple[Any, ...]
    after: tuple[Any, ...]
    # Raw keys of the rows at :since that were read already: read again first, skipped.
    read_already: frozenset[Any] = frozenset()


def read_in_process(request: ReadRequest) -> Iterator[Batch]:
    """The request's validated batches, read by a child process, in order.

    At most one batch waits in the pipe, so memory stays bounded however long the read.
    The child ends with the read; closing this generator early (the store failed)
    kills it. A failed read raises `ReadError`.
    """
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_read_in_child,
        args=(sender, request),
        name=f"read-{request.source.name}-{request.entity}",
        daemon=True,
    )
    process.start()
    sender.close()  # the child's end: EOF here when the child is gone
    try:
        while True:
            try:
                message = receiver.recv_bytes()
            except EOFError:
                process.join(timeout=5)
                raise ReadError(
                    f"the reading process ended without finishing (exit code {process.exitcode})"
                ) from None
            batch = _decode(message)
            if batch is None:
                return
            yield batch
    finally:
        receiver.close()
        if process.is_alive():
            process.kill()
        process.join()


def _read_in_child(pipe: Pipe, request: ReadRequest) -> None:
    # The parent decides when to stop (a daemon finishes its cycle on SIGTERM); it kills
    # this process if it stops reading early, and a dead parent breaks the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _end_with_parent()
    from watchdog.sources.connect import open_source_engine  # imports the config module

    try:
        engine = open_source_engine(request.source)
        with engine.connect() as connection:
            rows = connection.execution_options(yield_per=request.source.batch_size).execute(
                text(request.sql), request.params
            )
            columns = tuple(name.lower() for name in rows.keys())  # noqa: SIM118
            if columns != request.columns:
                raise ReadError(
                    f"the query's columns changed during the read: {', '.join(columns)}"
                )
            validator = RowValidator(
                ENTITIES[request.entity],
                request.source.timezone,
                columns,
                encoding_for(request.store_dialect),
                before=request.before,
                after=request.after,
            )
            since, updated_at = request.params["since"], columns.index("updated_at")
            key = columns.index(ENTITIES[request.entity].key)
            skipping = bool(request.read_already)
            for fetched in driver_batches(rows, request.source.batch_size):
                raw_batch = fetched
                if skipping:  # the rows at :since come first
                    skipping = fetched[-1][updated_at] == since
                    raw_batch = [
                        raw
                        for raw in fetched
                        if raw[updated_at] != since or raw[key] not in request.read_already
                    ]
                    if not raw_batch:
                        continue
                pipe.send_bytes(_encode(validate_batch(validator, columns, raw_batch)))
        pipe.send_bytes(pickle.dumps(("done",)))
    except BrokenPipeError:
        return  # the parent is gone or stopped reading
    except ReadError as exc:
        _send_error(pipe, str(exc))
    except SQLAlchemyError as exc:
        _send_error(pipe, first_line(exc))
    except BaseException as exc:  # a bug: the parent logs the whole story
        _send_error(pipe, f"{type(exc).__name__}: {first_line(exc)}", traceback.format_exc())
    finally:
        pipe.close()


def _end_with_parent() -> None:
    """End this process soon after its parent dies, even in the middle of a long query
    (a dead parent is otherwise noticed only at the next batch sent)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _send_error(pipe: Pipe, message: str, details: str = "") -> None:
    """Tell the parent why the read failed: one line, and a traceback for its log."""
    with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
        pipe.send_bytes(pickle.dumps(("error", message, details)))


def _encode(batch: Batch) -> bytes:
    # marshal writes tuples of text, numbers and None (SQLite's encoding) fastest, and
    # its version 2 fastest of all, as it does not look every value up to share
    # repeats (5.5M rows: 2.6 s against 5.8 s for version 4 and 10.2 s for pickle);
    # PostgreSQL's datetimes and decimals need pickle.
    try:
        rows, codec = marshal.dumps(batch.rows, 2), "marshal"
    except ValueError:
        rows, codec = pickle.dumps(batch.rows, protocol=pickle.HIGHEST_PROTOCOL), "pickle"
    # Rejected rows hold whatever the driver returned; the quarantine keeps them as text.
    bad = [
        ({key: None if value is None else str(value) for key, value in row.items()}, reason)
        for row, reason in batch.bad
    ]
    header = (batch.read, batch.newest, batch.repeated, bad)
    return pickle.dumps(("batch", codec, header, rows), protocol=pickle.HIGHEST_PROTOCOL)


def _decode(message: bytes) -> Batch | None:
    kind, *content = pickle.loads(message)
    if kind == "done":
        return None
    if kind == "error":
        message, details = content
        if details:
            log.error("the reading process failed: %s\n%s", message, details)
        raise ReadError(message)
    codec, (read, newest, repeated, bad), rows = content
    batch = Batch(read=read, newest=newest, repeated=repeated, bad=bad)
    batch.rows = marshal.loads(rows) if codec == "marshal" else pickle.loads(rows)
    return batch
