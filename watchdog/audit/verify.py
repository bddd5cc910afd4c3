"""Walking the chain: every entry's hash, every link, every seq, in order.

One pass over the entries in seq order (from the store or an exported file), keeping
the hashes of recent entries so a broken link can be told apart:

- an entry whose content no longer gives its stored hash was **altered**;
- a seq that jumps (5 then 7) means entry 6 was **removed**;
- an entry whose prev_hash is the hash of an earlier entry than the one before it
  follows entries that were **inserted** (renumbered in, or appended after it);
- a prev_hash that matches no earlier entry: this entry was forged or renumbered into
  place, or the entry before it was rewritten together with its hash (the chain alone
  cannot tell which; the message names both).

The newest entries can be cut off without a trace in the chain itself; an auditor
detects that against an export taken earlier (`--anchor`), whose last entry must still
be there with the same hash.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from watchdog.audit.chain import GENESIS, body_of, entry_hash
from watchdog.store import schema

_REMEMBERED = 100_000  # recent hashes kept to name an insertion (64-char keys: ~15 MB)
_CHUNK = 5_000
MAX_PROBLEMS = 20
_RENUMBER_SEARCH = 20  # removed entries looked for behind a renumbered one


@dataclass(frozen=True)
class Problem:
    seq: int  # the entry named: altered, removed or inserted
    kind: str  # altered | removed | inserted | broken_link
    message: str


@dataclass
class Verification:
    entries: int = 0
    last_seq: int = 0
    head_hash: str = GENESIS
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return (
                f"audit chain intact: {self.entries} entries, seq 1..{self.last_seq}, "
                f"head hash {self.head_hash}"
            )
        first = self.problems[0]
        more = len(self.problems) - 1
        return f"audit chain broken at entry {first.seq}: {first.message}" + (
            f" (and {more} more problem(s))" if more else ""
        )


def verify_entries(
    records: Iterable[Mapping[str, Any]],
    *,
    max_problems: int = MAX_PROBLEMS,
    anchor: tuple[int, str] | None = None,
) -> Verification:
    """Check records (stored rows or exported lines) given in seq order; with an anchor
    (seq, hash) from an earlier export, also that this entry is still there unchanged."""
    result = Verification()
    expected_seq, expected_prev = 1, GENESIS
    seen: OrderedDict[str, int] = OrderedDict()  # hash → seq of recent entries
    for record in records:
        seq = int(record["seq"])
        result.entries += 1
        stored_prev, stored_hash = str(record["prev_hash"]), str(record["hash"])
        problem = _link_problem(record, expected_seq, expected_prev, seen)
        if problem is None:
            computed = entry_hash(stored_prev, body_of(record))
            if computed != stored_hash:
                problem = Problem(
                    seq,
                    "altered",
                    f"entry {seq} was altered (or forged): its content hashes to {computed}, "
                    f"the stored hash is {stored_hash}",
                )
        if (
            problem is None
            and anchor is not None
            and seq == anchor[0] != 0
            and stored_hash != anchor[1]
        ):
            problem = Problem(
                seq,
                "altered",
                f"entry {seq} is not the one exported earlier: hash {stored_hash}, "
                f"the anchor says {anchor[1]}",
            )
        if problem is not None:
            result.problems.append(problem)
            if len(result.problems) >= max_problems:
                break
        # Go on from what is stored, so one bad entry is reported once, not as a cascade.
        seen[stored_hash] = seq
        if len(seen) > _REMEMBERED:
            seen.popitem(last=False)
        expected_seq, expected_prev = seq + 1, stored_hash
        result.last_seq, result.head_hash = seq, stored_hash
    if anchor is not None and result.last_seq < anchor[0] and len(result.problems) < max_problems:
        result.problems.append(
            Problem(
                result.last_seq + 1,
                "removed",
                f"{_span(result.last_seq + 1, anchor[0])} removed: the chain ends at "
                f"entry {result.last_seq}, an earlier export ended at entry {anchor[0]}",
            )
        )
    return result


def _link_problem(
    record: Mapping[str, Any], expected_seq: int, expected_prev: str, seen: Mapping[str, int]
) -> Problem | None:
    """What is wrong with the link from the entry before to this one, if anything.

    A broken link alone cannot say which side was tampered with; whether the entry's
    content hashes right under another seq tells a renumbering from a forgery.
    """
    seq, prev = int(record["seq"]), str(record["prev_hash"])
    if seq > expected_seq:
        return Problem(
            expected_seq,
            "removed",
            f"{_span(expected_seq, seq - 1)} removed: entry {seq} follows entry {expected_seq - 1}",
        )
    if seq < expected_seq:
        return Problem(
            seq, "inserted", f"entry {seq} is out of order after entry {expected_seq - 1}"
        )
    if prev == expected_prev:
        return None
    earlier = seen.get(prev)
    if earlier is not None and earlier < seq - 1:
        if _hashes_as(record, earlier + 1):
            return Problem(
                earlier + 1,
                "inserted",
                f"{_span(earlier + 1, seq - 1)} inserted: "
                f"entry {seq} was written as entry {earlier + 1}, right after entry "
                f"{earlier}, and renumbered",
            )
        return Problem(
            seq,
            "inserted",
            f"entry {seq} was forged: its prev_hash is the hash of entry {earlier}, "
            f"not of entry {seq - 1}",
        )
    if earlier is None:
        for gap in range(1, _RENUMBER_SEARCH + 1):
            if _hashes_as(record, seq + gap):
                return Problem(
                    seq,
                    "removed",
                    f"{_span(seq, seq + gap - 1)} removed and the later entries renumbered: "
                    f"entry {seq} "
                    f"was written as entry {seq + gap}",
                )
    if seq == 1:
        return Problem(1, "inserted", f"entry 1 does not start the chain: prev_hash {prev}")
    return Problem(
        seq,
        "broken_link",
        f"entry {seq} does not follow entry {seq - 1}: its prev_hash {prev} is no earlier "
        f"entry's hash (entry {seq} was forged or its prev_hash altered, or entry "
        f"{seq - 1} was rewritten together with its hash)",
    )


def _span(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first}..{last}"


def _hashes_as(record: Mapping[str, Any], seq: int) -> bool:
    """Whether the entry's content gives its stored hash had it been numbered `seq`."""
    body = body_of(record)
    body["seq"] = seq
    return entry_hash(str(record["prev_hash"]), body) == str(record["hash"])


def stored_entries(store: Engine) -> Iterator[dict[str, Any]]:
    """The chain in seq order, read in chunks by seq (constant memory on any size)."""
    table = schema.audit_log
    after = None
    while True:
        query = select(table).order_by(table.c.seq).limit(_CHUNK)
        if after is not None:
            query = query.where(table.c.seq > after)
        with store.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
        if not rows:
            return
        yield from rows
        after = rows[-1]["seq"]


def verify_store(
    store: Engine, *, max_problems: int = MAX_PROBLEMS, anchor: tuple[int, str] | None = None
) -> Verification:
    return verify_entries(stored_entries(store), max_problems=max_problems, anchor=anchor)
