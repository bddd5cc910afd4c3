"""`watchdog audit verify` and `watchdog audit export`.

    watchdog audit verify [--file EXPORT.jsonl] [--anchor EARLIER_EXPORT.jsonl]
    watchdog audit export --format jsonl [--output FILE]

verify exits 0 when the chain is intact, 1 when it is not (the first problem named on
one line, the others listed after it), 2 for a file that cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from watchdog.audit.export import last_entry, read_jsonl, write_jsonl
from watchdog.audit.verify import MAX_PROBLEMS, Verification, stored_entries, verify_entries
from watchdog.config import load_settings
from watchdog.store.database import create_store_engine, require_current_schema


def register(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    audit = command("audit", "the hash-chained audit trail: verify it, export it")
    audit.add_argument("audit_command", choices=("verify", "export"))
    audit.add_argument("--file", type=Path, help="verify: an exported file instead of the store")
    audit.add_argument(
        "--anchor",
        type=Path,
        help="verify: an earlier export; its last entry must still be in the chain unchanged",
    )
    audit.add_argument("--format", choices=("jsonl",), default="jsonl", help="export: jsonl")
    audit.add_argument("--output", type=Path, help="export: write to FILE (default stdout)")
    audit.set_defaults(handler=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    if args.audit_command == "export":
        if args.file or args.anchor:
            print("error: audit export: --file and --anchor belong to verify", file=sys.stderr)
            return 2
        return _export(args)
    if args.output:
        print("error: audit verify: --output belongs to export", file=sys.stderr)
        return 2
    try:
        anchor = last_entry(args.anchor) if args.anchor else None
        if args.file:
            result = verify_entries(read_jsonl(args.file), anchor=anchor)
        else:
            result = _verify_store(args, anchor)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _report(result)


def _verify_store(args: argparse.Namespace, anchor: tuple[int, str] | None) -> Verification:
    store = create_store_engine(load_settings(Path(args.config)).store_url)
    try:
        require_current_schema(store)
        return verify_entries(stored_entries(store), anchor=anchor)
    finally:
        store.dispose()


def _report(result: Verification) -> int:
    if result.ok:
        print(result.summary())
        return 0
    print(result.summary(), file=sys.stderr)
    for problem in result.problems[1:]:
        print(f"  entry {problem.seq}: {problem.message}", file=sys.stderr)
    if len(result.problems) >= MAX_PROBLEMS:
        print(f"  (stopped after {MAX_PROBLEMS} problems)", file=sys.stderr)
    return 1


def _export(args: argparse.Namespace) -> int:
    store = create_store_engine(load_settings(Path(args.config)).store_url)
    try:
        require_current_schema(store)
        if args.output is None:
            count = write_jsonl(stored_entries(store), sys.stdout)
        else:
            # Written beside and renamed: a reader never sees half an export.
            partial = args.output.with_name(args.output.name + ".partial")
            with partial.open("w", encoding="utf-8") as out:
                count = write_jsonl(stored_entries(store), out)
            partial.replace(args.output)
            print(f"{count} audit entries written to {args.output}", file=sys.stderr)
    finally:
        store.dispose()
    return 0
