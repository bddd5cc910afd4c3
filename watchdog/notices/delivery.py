"""Delivering the outbox: claim a row, record the attempt, send, record the outcome.

The `deliveries` table is the outbox: one row per notice and recipient, written with
the notice. `Outbox.run` (the daemon's delivery job) does, for each due row:

1. **Claim** it with a conditional update (`state` pending → sending, `attempts` + 1,
   `claimed_by` this process, a Message-ID generated if the row has none yet) and
   commit, so the attempt is on record **before** anything leaves.
2. **Send** it (one SMTP transaction, or one file, per row: a refused recipient is that
   row's outcome only).
3. **Record** the outcome, conditional on the claim still being ours: sent (with the
   time and Message-ID), pending again after a backoff (transient failure), or failed
   (permanent, or out of attempts) with the server's answer. When every row of a notice
   is sent, the notice becomes delivered in the same transaction.

A row left "sending" by a daemon that died between 1 and 3 is reconciled at the start
of each run (`reconcile`): if the sender can tell that the message arrived (the file
exists) it is recorded as sent; otherwise it is sent again **with the same Message-ID**,
counted in `interruptions` and explained in `last_error` and the log, so a copy the
server may already hold is identifiable. docs/architecture.md ("Delivery") says why.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from watchdog.notices.mail_settings import MailSettings
from watchdog.notices.mime import (
    NoticeMail,
    OutgoingMessage,
    build_message,
    is_valid_address,
    new_message_id,
)
from watchdog.notices.senders import Sender, SendError
from watchdog.store import schema

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
deliveries = schema.deliveries
notices = schema.notices
MAX_ERROR = 2000


def utc_now() -> datetime:
    return datetime.now(UTC)


def instance_name() -> str:
    """Who claims: host and pid (to tell a dead local daemon) and a random token."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class DeliveryReport:
    """What one delivery run did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    reconciled: int = 0
    stopped_by: str | None = None  # a session failure that ended the run early
    seconds: float = 0.0

    @property
    def busy(self) -> bool:
        return bool(self.sent or self.retrying or self.failed or self.reconciled)

    def summary(self) -> str:
        text = (
            f"delivery: {self.sent} sent, {self.retrying} to retry, {self.failed} failed, "
            f"{self.reconciled} interrupted claim(s) reconciled in {self.seconds:.2f}s"
        )
        return text + (f"; stopped: {self.stopped_by}" if self.stopped_by else "")


@dataclass(frozen=True)
class Claim:
    """A row this process holds in state "sending", with what its message needs."""

    delivery_id: int
    notice_id: int
    recipient: str
    attempts: int
    message_id: str
    mail: NoticeMail


class Outbox:
    """Delivers due outbox rows through one sender; safe to run in several processes."""

    def __init__(
        self,
        store: Engine,
        settings: MailSettings,
        sender: Sender,
        *,
        instance: str | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.settings = settings
        self.sender = sender
        self.instance = instance or instance_name()
        self.clock = clock
        # Outcomes known but not yet stored (the store refused the write): recorded at the
        # next run before anything else, so an accepted message is not taken for an
        # interrupted one and sent again.
        self._unrecorded: dict[int, tuple[Claim, SendError | None, datetime]] = {}

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> DeliveryReport:
        """The daemon's job: reconcile, then deliver until nothing is due. Never raises."""
        started = time.monotonic()
        report = DeliveryReport()
        try:
            self._record_unrecorded()
            report.reconciled = self.reconcile()
            while not should_stop():
                batch = self.deliver_due(should_stop=should_stop)
                report.sent += batch.sent
                report.retrying += batch.retrying
                report.failed += batch.failed
                report.stopped_by = batch.stopped_by
                if batch.stopped_by or not (batch.sent + batch.retrying + batch.failed):
                    break
        except Exception:  # the job boundary: the next run tries again
            log.exception("delivery run failed")
        report.seconds = time.monotonic() - started
        if report.busy:
            (log.warning if report.failed or report.stopped_by else log.info)(
                "%s", report.summary()
            )
        return report

    def deliver_due(
        self, now: datetime | None = None, should_stop: Callable[[], bool] = lambda: False
    ) -> DeliveryReport:
        """One batch: the due pending rows, oldest first, each claimed, sent, recorded.

        Claims and outcomes are stamped with the clock at that moment, or all with `now`
        when it is given (tests control time so).
        """
        clock: Clock = (lambda: now) if now is not None else self.clock
        report = DeliveryReport()
        with self.store.connect() as connection:
            ids = connection.scalars(
                select(deliveries.c.id)
                .where(deliveries.c.state == "pending", _due(clock()))
                .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
                .limit(self.settings.batch_size)
            ).all()
        try:
            for delivery_id in ids:
                if should_stop():
                    break
                claim = self.claim(delivery_id, clock())
                if claim is None:
                    continue  # another daemon took it, or it is not due any more
                outcome = self._send(claim)
                at = clock()
                try:
                    self.record(claim, outcome, at)
                except SQLAlchemyError:
                    self._unrecorded[claim.delivery_id] = (claim, outcome, at)
                    raise
                if outcome is None:
                    report.sent += 1
                elif outcome.permanent or self._gives_up(outcome, claim.attempts):
                    report.failed += 1
                else:
                    report.retrying += 1
                if outcome is not None and outcome.session:
                    report.stopped_by = outcome.answer
                    break
        finally:
            self._close_sender()
        return report

    def _close_sender(self) -> None:
        try:
            self.sender.close()
        except Exception:  # the messages are recorded; a failing goodbye changes nothing
            log.warning("delivery: closing the sender failed", exc_info=True)

    def claim(self, delivery_id: int, now: datetime) -> Claim | None:
        """Take one due row (conditional update) and commit before anything is sent."""
        with self.store.begin() as connection:
            taken = connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == delivery_id,
                    deliveries.c.state == "pending",
                    _due(now),
                )
                .values(
                    state="sending",
                    claimed_by=self.instance,
                    claimed_at=now,
                    attempts=deliveries.c.attempts + 1,
                )
            )
            if taken.rowcount != 1:
                return None
            row = connection.execute(
                select(deliveries, notices.c.number)
                .join(notices)
                .where(deliveries.c.id == delivery_id)
            ).one()
            message_id = row.message_id
            if message_id is None:
                message_id = new_message_id(row.number, delivery_id, self.settings.from_addr_spec)
                connection.execute(
                    update(deliveries)
                    .where(deliveries.c.id == delivery_id)
                    .values(message_id=message_id)
                )
            return Claim(
                delivery_id=delivery_id,
                notice_id=row.notice_id,
                recipient=row.recipient,
                attempts=row.attempts,
                message_id=message_id,
                mail=_notice_mail(connection, row.notice_id),
            )

    def message_for(self, claim: Claim) -> OutgoingMessage:
        return build_message(
            claim.mail,
            from_address=self.settings.from_address,
            envelope_from=self.settings.from_addr_spec,
            recipient=claim.recipient,
            message_id=claim.message_id,
        )

    def _send(self, claim: Claim) -> SendError | None:
        """Send one claimed row; None when it was accepted, else what went wrong."""
        if not is_valid_address(claim.recipient):
            return SendError(f"invalid address: {claim.recipient!r}", permanent=True)
        try:
            receipt = self.sender.send(self.message_for(claim))
        except SendError as exc:
            return exc
        except Exception as exc:  # a sender bug: keep the row and retry, loudly
            log.exception("delivery %d: unexpected error from the sender", claim.delivery_id)
            return SendError(f"{type(exc).__name__}: {exc}", permanent=False)
        log.debug("delivery %d to %s: %s", claim.delivery_id, claim.recipient, receipt)
        return None

    def _record_unrecorded(self) -> None:
        for delivery_id, (claim, outcome, at) in list(self._unrecorded.items()):
            self.record(claim, outcome, at)  # raises again while the store refuses
            del self._unrecorded[delivery_id]
            log.warning("delivery %d: outcome recorded late", delivery_id)

    def _gives_up(self, outcome: SendError, attempts: int) -> bool:
        """A transient failure of this message after its last allowed attempt. A session
        failure (server unreachable, login refused) is not the message's: it is retried
        without limit, so an outage over a weekend loses nothing."""
        if outcome.permanent or outcome.session:
            return False
        return attempts >= self.settings.max_attempts

    def record(self, claim: Claim, outcome: SendError | None, now: datetime) -> None:
        """Store the outcome of a claimed row, only if the claim is still ours."""
        if outcome is None:
            values: dict[str, object] = {"state": "sent", "delivered_at": now}
        else:
            gave_up = self._gives_up(outcome, claim.attempts)
            error = outcome.answer
            if gave_up:
                error = f"gave up after {claim.attempts} attempts: {error}"
            values = {"last_error": error[:MAX_ERROR], "permanent": outcome.permanent}
            if outcome.permanent or gave_up:
                values["state"] = "failed"
                log.error(
                    "delivery %d of notice %d to %s failed: %s",
                    claim.delivery_id,
                    claim.notice_id,
                    claim.recipient,
                    error,
                )
            else:
                values["state"] = "pending"
                values["next_attempt_at"] = now + self.settings.backoff(claim.attempts)
        with self.store.begin() as connection:
            done = connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == claim.delivery_id,
                    deliveries.c.state == "sending",
                    deliveries.c.claimed_by == self.instance,
                )
                .values(**values)
            )
            if done.rowcount != 1:
                log.warning(
                    "delivery %d: the claim was taken over while sending; outcome not recorded",
                    claim.delivery_id,
                )
                return
            if outcome is None:
                _mark_notice_if_delivered(connection, claim.notice_id, now)

    def reconcile(self, now: datetime | None = None) -> int:
        """Settle rows left "sending" by a process that is gone; return how many.

        A claim is stale when it is this process's own (no run is in flight when this
        is called), a dead process's on this host, or older than the lease.
        """
        now = now or self.clock()
        with self.store.connect() as connection:
            rows = connection.execute(
                select(
                    deliveries.c.id,
                    deliveries.c.claimed_by,
                    deliveries.c.claimed_at,
                    deliveries.c.attempts,
                    deliveries.c.message_id,
                    deliveries.c.notice_id,
                ).where(deliveries.c.state == "sending")
            ).all()
        settled = 0
        for row in rows:
            if row.id in self._unrecorded:
                continue  # ours, with a known outcome waiting to be stored
            if self._is_stale(row.claimed_by, row.claimed_at, now):
                settled += self._settle(row, now)
        return settled

    def _is_stale(self, claimed_by: str | None, claimed_at: datetime | None, now: datetime) -> bool:
        if claimed_by is None or claimed_by == self.instance or claimed_at is None:
            return True
        if claimed_at < now - self.settings.lease:
            return True
        host, _, rest = claimed_by.partition(":")
        pid = rest.partition(":")[0]
        return host == socket.gethostname() and pid.isdigit() and not _process_alive(int(pid))

    def _settle(self, row: Any, now: datetime) -> int:
        delivery_id: int = row.id
        attempts: int = row.attempts
        message_id: str | None = row.message_id
        claimed_by: str | None = row.claimed_by
        arrived = self.sender.already_delivered(message_id) if message_id else False
        where = update(deliveries).where(
            deliveries.c.id == delivery_id,
            deliveries.c.state == "sending",
            deliveries.c.attempts == attempts,
            or_(deliveries.c.claimed_by == claimed_by, deliveries.c.claimed_by.is_(None)),
        )  # the dead claim's claimer and time stay on the row until the next claim
        who = f"attempt {attempts} by {claimed_by}"
        if arrived:
            values: dict[str, object] = {"state": "sent", "delivered_at": now}
            log.warning(
                "delivery %d: %s was interrupted after the message arrived", delivery_id, who
            )
        elif attempts >= self.settings.max_attempts:
            values = {
                "state": "failed",
                "permanent": False,
                "last_error": f"{who} interrupted (the last allowed); not sent again",
            }
            log.error("delivery %d: %s interrupted; out of attempts", delivery_id, who)
        elif arrived is False:
            values = {
                "state": "pending",
                "next_attempt_at": now,
                "last_error": f"{who} interrupted before the message was written; sent again",
            }
            log.warning(
                "delivery %d: %s interrupted before writing; sending again", delivery_id, who
            )
        else:
            values = {
                "state": "pending",
                "next_attempt_at": now,
                "interruptions": deliveries.c.interruptions + 1,
                "last_error": (
                    f"{who} interrupted, outcome unknown; sent again with the same "
                    f"Message-ID {message_id}"
                ),
            }
            log.warning(
                "delivery %d: %s interrupted, outcome unknown; sending again with the same "
                "Message-ID %s (the recipient may get a copy twice)",
                delivery_id,
                who,
                message_id,
            )
        with self.store.begin() as connection:
            if connection.execute(where.values(**values)).rowcount != 1:
                return 0
            if arrived:
                _mark_notice_if_delivered(connection, row.notice_id, now)
        return 1


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def _notice_mail(connection: Connection, notice_id: int) -> NoticeMail:
    notice = connection.execute(select(notices).where(notices.c.id == notice_id)).one()
    addressed = connection.execute(
        select(deliveries.c.recipient, deliveries.c.role)
        .where(deliveries.c.notice_id == notice_id)
        .order_by(deliveries.c.id)
    ).all()
    return NoticeMail(
        number=notice.number,
        subject=notice.subject,
        body_text=notice.body_text,
        body_html=notice.body_html,
        issued_at=notice.issued_at,
        # An invalid address fails its own row; it stays out of the others' headers.
        to=tuple(
            r.recipient for r in addressed if r.role != "cc" and is_valid_address(r.recipient)
        ),
        cc=tuple(
            r.recipient for r in addressed if r.role == "cc" and is_valid_address(r.recipient)
        ),
    )


def _mark_notice_if_delivered(connection: Connection, notice_id: int, now: datetime) -> None:
    """issued → delivered once every recipient's row is sent (the notice row is locked
    first, so two processes finishing the last two rows cannot both miss it)."""
    state = connection.scalar(
        select(notices.c.state).where(notices.c.id == notice_id).with_for_update()
    )
    if state != "issued":
        return
    unsent = connection.scalar(
        select(func.count())
        .select_from(deliveries)
        .where(deliveries.c.notice_id == notice_id, deliveries.c.state != "sent")
    )
    if unsent == 0:
        from watchdog.notices.lifecycle import mark_delivered

        mark_delivered(connection, notice_id, now)


def schedule_delivery(
    scheduler: Any, store: Engine, settings: MailSettings, should_stop: Callable[[], bool]
) -> Outbox:
    """Add the delivery job to the daemon's APScheduler: first run now (which settles
    the claims a previous process left), then every `[mail] interval`."""
    from watchdog.notices.senders import build_sender

    outbox = Outbox(store, settings, build_sender(settings))
    interval = settings.interval.total_seconds()
    scheduler.add_job(
        outbox.run,
        "interval",
        seconds=interval,
        args=[should_stop],
        id="deliver",
        name="deliver the outbox",
        next_run_time=utc_now(),
        misfire_grace_time=max(1, int(interval)),
    )
    log.info("delivery: %s, every %ds", outbox.sender.description, int(interval))
    return outbox
