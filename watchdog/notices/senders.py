"""Senders: how one message reaches one recipient (SMTP, or an .eml file in a folder).

The contract is `Sender`; `build_sender` picks the configured one.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Protocol

import aiosmtplib

from watchdog.notices.mail_settings import MailSettings, SmtpSettings
from watchdog.notices.mime import OutgoingMessage, message_file_name


class SendError(Exception):
    """A send that did not succeed, as data (what happened and whether to try again).

    `answer` is the server's reply (`550 5.1.1 no such user`) or what went wrong
    (`connection refused by 127.0.0.1:2525`). `permanent` means trying again will not
    help (5xx for this message, an invalid address). `session` means the failure is the
    server's or the configuration's, not this message's (cannot connect, TLS or login
    refused): the rest of the batch would fail the same way, so it waits for the next run.
    """

    def __init__(self, answer: str, *, permanent: bool, session: bool = False) -> None:
        super().__init__(answer)
        self.answer = answer
        self.permanent = permanent
        self.session = session


class Sender(Protocol):
    """Hands one message to its recipient.

    `send(message)` takes an `OutgoingMessage` (one envelope recipient, the complete
    message bytes, its Message-ID) and returns a short receipt for the log (the
    server's final reply, or the file written) once the message is accepted. It raises
    `SendError` for every failure it can classify; any other exception is a bug and is
    treated by the caller as a transient failure. It must be safe to call again with the
    same message after a failure.

    `close()` ends what the sends of a batch shared (a connection); the next send opens
    anew. It never raises.

    `already_delivered(message_id)` answers, after a crash, whether a message with that
    Message-ID was accepted: True or False when the sender can know (the file sender
    looks for the file), None when it cannot (an SMTP server cannot be asked).

    `description` names the sender and where it delivers, for the log.
    """

    description: str

    def send(self, message: OutgoingMessage) -> str: ...

    def already_delivered(self, message_id: str) -> bool | None: ...

    def close(self) -> None: ...


class FileSender:
    """Writes each message as an .eml file into a folder (the embedded default).

    A file appears complete or not at all (written beside, then renamed), so its
    presence proves the message was delivered. The envelope recipient is recorded as a
    `Delivered-To:` header, as a local mail system does.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.description = f"file sender into {folder}"

    def path_of(self, message_id: str) -> Path:
        return self.folder / message_file_name(message_id)

    def send(self, message: OutgoingMessage) -> str:
        path = self.path_of(message.message_id)
        partial = path.with_name(f".{path.name}.partial")
        data = f"Delivered-To: {message.recipient}\r\n".encode("ascii") + message.data
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            partial.replace(path)
        except OSError as exc:
            # A full disk or a missing permission is the folder's problem, not the
            # message's: keep it and try again later.
            raise SendError(
                f"cannot write {path}: {exc.strerror or exc}", permanent=False, session=True
            ) from exc
        return f"written to {path}"

    def already_delivered(self, message_id: str) -> bool | None:
        return self.path_of(message_id).is_file()

    def close(self) -> None:
        pass  # nothing held between files


class SmtpSender:
    """SMTP through aiosmtplib (plain, STARTTLS or implicit TLS, AUTH), one transaction
    per message; a batch shares one connection, checked with NOOP before each reuse.

    Replies are classified as the design says: 5xx to the recipient or the data is
    permanent; 4xx, timeouts, refused or dropped connections are transient; anything
    that fails before the message is offered (connect, TLS, EHLO, AUTH, the sender
    address) is a session failure.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.description = f"SMTP {settings.security} {settings.host}:{settings.port}"
        self._where = f"{settings.host}:{settings.port}"
        # The connection lives on one event loop between the sends of a batch.
        self._runner: asyncio.Runner | None = None
        self._client: aiosmtplib.SMTP | None = None

    def send(self, message: OutgoingMessage) -> str:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self._send(message))

    def close(self) -> None:
        if self._runner is None:
            return
        if self._client is not None:
            self._runner.run(_quit(self._client))
            self._client = None
        self._runner.close()
        self._runner = None

    def already_delivered(self, message_id: str) -> bool | None:
        return None  # an SMTP server cannot be asked what it accepted

    async def _connected(self) -> aiosmtplib.SMTP:
        """The batch's connection, checked alive, or a new one (session failures raise)."""
        if self._client is not None:
            try:
                await self._client.noop()
                return self._client
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                self._client.close()  # gone idle or dropped: open a fresh one
                self._client = None
        settings = self.settings
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            use_tls=settings.security == "tls",
            start_tls=settings.security == "starttls",
            timeout=settings.timeout.total_seconds(),
            cert_bundle=str(settings.ca_file) if settings.ca_file else None,
        )
        try:
            await client.connect()
            if settings.username:
                await client.login(settings.username, settings.password)
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            answer = f"{self._where}: {exc.code} {exc.message}"
            raise SendError(answer, permanent=False, session=True) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            answer = f"{self._where}: {_describe(exc)}"
            raise SendError(answer, permanent=False, session=True) from exc
        self._client = client
        return client

    async def _send(self, message: OutgoingMessage) -> str:
        client = await self._connected()
        try:
            _, reply = await client.sendmail(
                message.envelope_from, [message.recipient], message.data
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            answer = f"{refused.code} {refused.message}"
            raise SendError(answer, permanent=refused.code >= 500) from exc
        except aiosmtplib.SMTPSenderRefused as exc:
            answer = f"{exc.code} {exc.message} (sender {exc.sender})"
            raise SendError(answer, permanent=False, session=True) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise SendError(f"{exc.code} {exc.message}", permanent=exc.code >= 500) from exc
        except ValueError as exc:  # an address aiosmtplib refuses to put on the wire
            raise SendError(f"invalid address: {exc}", permanent=True) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()  # the transaction broke off: never reuse this connection
            self._client = None
            raise SendError(f"{self._where}: {_describe(exc)}", permanent=False) from exc
        return reply


async def _quit(client: aiosmtplib.SMTP) -> None:
    # The message is accepted or refused by now; a failing QUIT changes nothing.
    if client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


def build_sender(settings: MailSettings) -> Sender:
    if settings.sender == "smtp":
        return SmtpSender(settings.smtp)
    return FileSender(settings.outbox)
