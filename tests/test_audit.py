"""The audit trail: a demo county's changes chained, verified, tampered with, exported.

One store per backend is built for the module (two recording cycles of a small demo
county, a notice acknowledged by a named officer); tests that tamper with it put it
back as it was before they finish, and check that the chain verifies again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, delete, func, insert, select, update

from tests.conftest import _pg_url, pg_schema_engine
from watchdog.app import Watchdog
from watchdog.audit.chain import GENESIS, Entry, append, body_of, entry_hash
from watchdog.audit.hooks import record_rule_set
from watchdog.audit.verify import verify_store
from watchdog.cli import main
from watchdog.config import load_settings
from watchdog.demo import generate_demo_source
from watchdog.engine.rulefiles import load_rules
from watchdog.notices import lifecycle
from watchdog.store import schema
from watchdog.store.database import create_store_engine, upgrade_store

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
CYCLES = (datetime(2026, 6, 28, 18, tzinfo=SHANGHAI), datetime(2026, 9, 28, 18, tzinfo=SHANGHAI))
OFFICER = "审计局-张三"
log = schema.audit_log


@dataclass
class County:
    config: Path
    store: Engine


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def county(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[County]:
    folder = tmp_path_factory.mktemp("audit")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'store.db'}"
    else:
        database = request.getfixturevalue("pg_database")
        name = f"audit_{uuid.uuid4().hex[:8]}"
        pg_schema_engine(database, name).dispose()
        url = _pg_url(database) + f"?options=-csearch_path%3D{name}"
    generate_demo_source(folder / "var" / "demo-source.db", cases=1200, seed=3)
    shutil.copytree(ROOT / "rules", folder / "rules")
    shutil.copy(ROOT / "calendar.toml", folder / "calendar.toml")
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///var/watchdog.db"', f'url = "{url}"')
    config = folder / "config.toml"
    config.write_text(text, encoding="utf-8")
    store = create_store_engine(url)
    upgrade_store(store)
    now = [CYCLES[0]]
    watchdog = Watchdog(load_settings(config), store, clock=lambda: now[0])
    assert watchdog.notices is not None, "the shipped config issues notices"
    for instant in CYCLES:
        now[0] = instant
        report = watchdog.run_cycle("demo")
        assert report.error is None, report.error
        if instant == CYCLES[0]:
            with store.begin() as connection:
                number = connection.execute(
                    select(schema.notices.c.number).order_by(schema.notices.c.id).limit(1)
                ).scalar_one()
                lifecycle.acknowledge(connection, number, by=OFFICER, at=instant)
    for poller in watchdog._pollers.values():
        poller.source_engine.dispose()
    yield County(config, store)
    store.dispose()


def entries(store: Engine) -> list[dict[str, Any]]:
    with store.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(log).order_by(log.c.seq))]


def verify_cli(county: County, capsys: pytest.CaptureFixture[str], *more: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["audit", "verify", "--config", str(county.config), *more])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_every_change_of_a_demo_run_is_chained_and_verifies(
    county: County, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = entries(county.store)
    assert [e["seq"] for e in chain] == list(range(1, len(chain) + 1))
    with county.store.connect() as connection:
        violation_events = connection.execute(
            select(func.count()).select_from(schema.violation_events)
        ).scalar_one()
        notice_events = connection.execute(
            select(func.count()).select_from(schema.notice_events)
        ).scalar_one()
        events = connection.execute(
            select(
                schema.violation_events.c.violation_id, schema.violation_events.c.event
            ).order_by(schema.violation_events.c.id)
        ).all()
    by_entity: dict[str, list[dict[str, Any]]] = {}
    for entry in chain:
        by_entity.setdefault(entry["entity"], []).append(entry)
    assert len(by_entity["violation"]) == violation_events > 100
    assert len(by_entity["notice"]) == notice_events > 10
    (ruleset,) = by_entity["ruleset"]  # two cycles, one rule set: appended once
    assert ruleset["seq"] == 1 and ruleset["action"] == "loaded"
    overdue = (ROOT / "rules" / "overdue.toml").read_bytes()
    assert ruleset["payload"]["files"]["overdue.toml"] == hashlib.sha256(overdue).hexdigest()
    # Each violation's entries follow its events, in order.
    first = events[0].violation_id
    assert [e["action"] for e in by_entity["violation"] if e["entity_id"] == str(first)] == [
        event for violation_id, event in events if violation_id == first
    ]
    actions = {e["action"] for e in by_entity["violation"]}
    assert {"opened", "upgraded", "resolved", "escalated"} <= actions
    acknowledged = [e for e in by_entity["notice"] if e["action"] == "acknowledged"]
    assert [e["actor"] for e in acknowledged] == [OFFICER]
    assert acknowledged[0]["payload"]["state_to"] == "acknowledged"
    assert acknowledged[0]["at"] == CYCLES[0]

    result = verify_store(county.store)
    assert result.ok and result.entries == len(chain) and result.head_hash == chain[-1]["hash"]
    status, output = verify_cli(county, capsys)
    assert status == 0, output
    assert f"audit chain intact: {len(chain)} entries" in output


def test_an_edited_entry_is_named(county: County, capsys: pytest.CaptureFixture[str]) -> None:
    chain = entries(county.store)
    victim = next(e for e in chain[len(chain) // 2 :] if e["entity"] == "violation")
    seq = victim["seq"]
    edited = {**victim["payload"], "severity_to": "warning", "dept_code": "XXX"}
    try:
        with county.store.begin() as connection:
            connection.execute(update(log).where(log.c.seq == seq).values(payload=edited))
        status, output = verify_cli(county, capsys)
        assert status == 1
        assert f"audit chain broken at entry {seq}: entry {seq} was altered" in output

        # Rewriting the hash along with the content moves the break to the next link.
        forged_hash = entry_hash(victim["prev_hash"], body_of({**victim, "payload": edited}))
        with county.store.begin() as connection:
            connection.execute(update(log).where(log.c.seq == seq).values(hash=forged_hash))
        status, output = verify_cli(county, capsys)
        assert status == 1
        assert f"audit chain broken at entry {seq + 1}: entry {seq + 1} does not follow" in output
        assert f"or entry {seq} was rewritten together with its hash" in output
    finally:
        with county.store.begin() as connection:
            connection.execute(
                update(log)
                .where(log.c.seq == seq)
                .values(payload=victim["payload"], hash=victim["hash"])
            )
    assert verify_store(county.store).ok


def test_a_deleted_entry_is_named(county: County, capsys: pytest.CaptureFixture[str]) -> None:
    chain = entries(county.store)
    seq = len(chain) // 3
    removed = chain[seq - 1]
    try:
        with county.store.begin() as connection:
            connection.execute(delete(log).where(log.c.seq == seq))
        status, output = verify_cli(county, capsys)
        assert status == 1
        assert f"audit chain broken at entry {seq}: entry {seq} removed" in output

        # Closing the gap by renumbering the later entries does not hide it.
        _shift(county.store, after=seq, by=-1)
        status, output = verify_cli(county, capsys)
        assert status == 1
        assert (
            f"audit chain broken at entry {seq}: entry {seq} removed and the later entries "
            f"renumbered: entry {seq} was written as entry {seq + 1}" in output
        )
        _shift(county.store, after=seq - 1, by=1)
    finally:
        with county.store.begin() as connection:
            connection.execute(insert(log).values(removed))
    assert verify_store(county.store).ok


def test_an_inserted_entry_is_named(county: County, capsys: pytest.CaptureFixture[str]) -> None:
    chain = entries(county.store)
    seq = len(chain) // 2
    # A forger who knows the recipe: the forged entry itself hashes right and links to
    # the entry before it; the entries after it are renumbered to make room.
    forged_body = {
        **body_of(chain[seq - 1]),
        "seq": seq,
        "entity": "violation",
        "entity_id": "999999",
        "action": "resolved",
        "payload": {"severity_from": "red", "severity_to": None},
    }
    prev = chain[seq - 2]["hash"]
    forged = {
        **forged_body,
        "at": chain[seq - 1]["at"],
        "recorded_at": chain[seq - 1]["recorded_at"],
        "prev_hash": prev,
        "hash": entry_hash(prev, forged_body),
    }
    try:
        _shift(county.store, after=seq - 1, by=1)
        with county.store.begin() as connection:
            connection.execute(insert(log).values(forged))
        status, output = verify_cli(county, capsys)
        assert status == 1
        assert (
            f"audit chain broken at entry {seq}: entry {seq} inserted: entry {seq + 1} was "
            f"written as entry {seq}, right after entry {seq - 1}, and renumbered" in output
        )
    finally:
        with county.store.begin() as connection:
            connection.execute(delete(log).where(log.c.seq == seq, log.c.hash == forged["hash"]))
        _shift(county.store, after=seq, by=-1)
    assert verify_store(county.store).ok

    # Appended after the head, by a forger who does not know the head's hash.
    last = chain[-1]
    tail_body = {**body_of(last), "seq": last["seq"] + 1}
    tail = {
        **tail_body,
        "at": last["at"],
        "recorded_at": last["recorded_at"],
        "prev_hash": "f" * 64,
        "hash": entry_hash("f" * 64, tail_body),
    }
    try:
        with county.store.begin() as connection:
            connection.execute(insert(log).values(tail))
        status, output = verify_cli(county, capsys)
        assert status == 1
        assert f"audit chain broken at entry {tail['seq']}: entry {tail['seq']} does not " in output
        assert f"entry {tail['seq']} was forged or its prev_hash altered" in output
    finally:
        with county.store.begin() as connection:
            connection.execute(delete(log).where(log.c.seq == tail["seq"]))
    assert verify_store(county.store).ok


def _shift(store: Engine, *, after: int, by: int) -> None:
    """Renumber the entries after seq `after` by `by` (through a far range, so the
    primary key never sees two rows with one seq)."""
    far = 10_000_000
    with store.begin() as connection:
        connection.execute(update(log).where(log.c.seq > after).values(seq=log.c.seq + far))
        connection.execute(update(log).where(log.c.seq > far).values(seq=log.c.seq - far + by))


def independent_check(lines: list[str]) -> int:
    """The README's recipe, written again from scratch: what an outside auditor runs."""
    prev = "0" * 64
    for line in lines:
        entry = json.loads(line)
        body = {k: v for k, v in entry.items() if k not in ("prev_hash", "hash")}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert entry["prev_hash"] == prev, entry["seq"]
        prev = hashlib.sha256((prev + canonical).encode("utf-8")).hexdigest()
        assert entry["hash"] == prev, entry["seq"]
    return len(lines)


def test_an_export_verifies_elsewhere_and_anchors_the_head(
    county: County, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "audit.jsonl"
    status = main(
        [
            *("audit", "export", "--format", "jsonl", "--output", str(exported)),
            *("--config", str(county.config)),
        ]
    )
    assert status == 0
    lines = exported.read_text(encoding="utf-8").splitlines()
    chain = entries(county.store)
    assert independent_check(lines) == len(chain)
    assert json.loads(lines[-1])["hash"] == chain[-1]["hash"]
    assert any(OFFICER in line for line in lines)  # UTF-8, not \\u escapes
    status, output = verify_cli(county, capsys, "--file", str(exported))
    assert status == 0 and f"{len(chain)} entries" in output

    # An edited line of the file is named by the same verifier.
    seq = len(lines) // 2
    entry = json.loads(lines[seq - 1])
    entry["actor"] = "somebody else"
    tampered = tmp_path / "tampered.jsonl"
    lines[seq - 1] = json.dumps(entry, ensure_ascii=False)
    tampered.write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, output = verify_cli(county, capsys, "--file", str(tampered))
    assert status == 1 and f"audit chain broken at entry {seq}: entry {seq} was altered" in output

    # Cutting off the newest entries leaves a valid chain: only an earlier export shows it.
    last = chain[-1]
    try:
        with county.store.begin() as connection:
            connection.execute(delete(log).where(log.c.seq == last["seq"]))
        status, output = verify_cli(county, capsys)
        assert status == 0
        status, output = verify_cli(county, capsys, "--anchor", str(exported))
        assert status == 1
        assert f"audit chain broken at entry {last['seq']}: entry {last['seq']} removed" in output
    finally:
        with county.store.begin() as connection:
            connection.execute(insert(log).values(last))
    status, output = verify_cli(county, capsys, "--anchor", str(exported))
    assert status == 0, output


def test_a_rule_set_is_appended_once_per_change(store: Engine, tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules_dir)
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert record_rule_set(store, rules_dir, load_rules(rules_dir), at)
    assert not record_rule_set(store, rules_dir, load_rules(rules_dir), at)  # another daemon
    fees = rules_dir / "fees.toml"
    fees.write_text(fees.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    changed = load_rules(rules_dir)
    assert record_rule_set(store, rules_dir, changed, at)
    first, second = entries(store)
    assert (first["action"], second["action"]) == ("loaded", "changed")
    assert second["entity_id"] == changed.fingerprint
    assert second["payload"]["previous"] == first["entity_id"]
    assert second["payload"]["files"]["fees.toml"] == hashlib.sha256(fees.read_bytes()).hexdigest()
    assert (
        second["payload"]["files"]["data/fee_catalogue.toml"]
        == (first["payload"]["files"]["data/fee_catalogue.toml"])
    )
    assert verify_store(store).ok


def test_concurrent_appenders_never_fork_the_chain(store: Engine) -> None:
    """Two writers appending batches at once, each transaction held open a moment after
    its append: without the chain lock both would read the same head (PostgreSQL) and
    the second insert would fail on the primary key, or the chain would fork."""
    rounds, batch = 15, 40
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            barrier.wait()
            for round_number in range(rounds):
                with store.begin() as connection:
                    append(
                        connection,
                        [
                            Entry(
                                datetime.now(UTC),
                                name,
                                "violation",
                                f"{name}-{round_number}-{i}",
                                "opened",
                                {"i": i},
                            )
                            for i in range(batch)
                        ],
                    )
                    threading.Event().wait(0.005)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    chain = entries(store)
    assert [e["seq"] for e in chain] == list(range(1, 2 * rounds * batch + 1))
    assert chain[0]["prev_hash"] == GENESIS
    # Each transaction's batch is contiguous: the lock was held from head to commit.
    runs = [chain[i]["actor"] for i in range(0, len(chain), batch)]
    assert all(
        {e["actor"] for e in chain[i : i + batch]} == {runs[i // batch]}
        for i in range(0, len(chain), batch)
    )
    assert sorted(runs) == ["a"] * rounds + ["b"] * rounds
    assert verify_store(store).ok
