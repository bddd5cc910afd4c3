"""The e-mail a notice becomes: one MIME message per delivery row (one recipient).

The message is multipart/alternative (plain text and HTML, UTF-8) with the notice's
subject (RFC 2047-encoded, so Chinese survives every server), the notice's To and Cc
lists as headers (a recipient sees who else was told), a Message-ID stored on the
delivery row before the first attempt, and `X-Watchdog-Notice: <number>`. It is built
from stored values only, so a resend produces the same message with the same Message-ID.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

NOTICE_HEADER = "X-Watchdog-Notice"
_ADDR_SPEC = re.compile(r"^[^@\s,;<>\"()\[\]\\]+@[^@\s,;<>\"()\[\]\\]+\.[^@\s,;<>\"()\[\]\\]+$")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class NoticeMail:
    """What a notice row and its delivery rows say about one outgoing message."""

    number: str
    subject: str
    body_text: str
    body_html: str
    issued_at: datetime
    to: Sequence[str]
    cc: Sequence[str]


@dataclass(frozen=True)
class OutgoingMessage:
    """One message for one recipient, ready for a sender."""

    message_id: str  # with angle brackets, as in the header
    notice_number: str
    envelope_from: str
    recipient: str
    data: bytes  # the whole message, CRLF line ends


def is_valid_address(address: str) -> bool:
    """A bare address a mail server can be asked about (no display name, no spaces)."""
    if not _ADDR_SPEC.match(address):
        return False
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError):
        return False
    return True


def new_message_id(number: str, delivery_id: int, envelope_from: str) -> str:
    """A globally unique Message-ID that names the notice and the delivery row."""
    domain = envelope_from.rpartition("@")[2] or "localhost"
    local = _ID_UNSAFE.sub("_", number)
    return f"<{local}.{delivery_id}.{secrets.token_hex(6)}@{domain}>"


def message_file_name(message_id: str) -> str:
    """The outbox file name of a message: its Message-ID's left part, made path-safe."""
    local = message_id.strip("<>").partition("@")[0]
    return _ID_UNSAFE.sub("_", local) + ".eml"


def build_message(
    mail: NoticeMail, *, from_address: str, envelope_from: str, recipient: str, message_id: str
) -> OutgoingMessage:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = from_address
    message["To"] = ", ".join(mail.to) if mail.to else recipient
    if mail.cc:
        message["Cc"] = ", ".join(mail.cc)
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.issued_at)
    message["Message-ID"] = message_id
    message[NOTICE_HEADER] = mail.number
    message.set_content(mail.body_text, charset="utf-8")
    message.add_alternative(mail.body_html, subtype="html", charset="utf-8")
    return OutgoingMessage(
        message_id=message_id,
        notice_number=mail.number,
        envelope_from=envelope_from,
        recipient=recipient,
        data=message.as_bytes(),
    )
