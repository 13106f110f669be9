"""Building and parsing Session 1:1 messages (spec client.md §2, §6.1–6.5, §6.9).

Sans-I/O. The sender side is::

    Content ─► pad (160-byte blocks) ─► sign-then-seal to the recipient (native core)
            ─► Envelope{SESSION_MESSAGE, timestamp, content} ─► WebSocketMessage{REQUEST}
            ─► base64 ─► ``store`` in namespace 0 of the recipient's swarm

and :func:`open_stored` / :func:`open_many` undo it. Content builders return protobuf
``Content`` objects; :class:`Incoming` is what the receive path hands to the client.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError as _PbDecodeError
from google.protobuf.message import Message

from session import protocol
from session.errors import DecodeError, SessionError
from session.proto import session_pb2 as pb

if TYPE_CHECKING:
    from session.identity import Identity

#: Swarm TTLs (ms), desktop ``constants.ts``.
TTL_CONTENT_MS = 14 * 24 * 3600 * 1000
TTL_CONFIG_MS = 30 * 24 * 3600 * 1000
TTL_TYPING_MS = 20 * 1000
#: Display names are capped at 100 bytes (contacts config limit).
MAX_NAME_BYTES = 100
#: Desktop's visible-message body limit.
MAX_BODY_CHARS = 2000
#: Largest stored body the nodes accept (raw bytes).
MAX_STORED_BYTES = 76_800
#: Largest timestamp (ms) a received message may carry, in its envelope, read receipts or
#: unsend requests: JavaScript's largest safe integer (Session Desktop cannot make a larger
#: one), far inside SQLite's 64-bit integers so sums with expiry timers cannot overflow.
MAX_TIMESTAMP_MS = 2**53 - 1


class ExpirationMode(enum.IntEnum):
    """Disappearing-message modes (``Content.expirationType``)."""

    OFF = 0
    AFTER_READ = 1
    AFTER_SEND = 2


#: the shortest and longest disappearing-message timers (seconds)
TIMER_MIN_S = 10
TIMER_MAX_S = 14 * 24 * 3600


@dataclasses.dataclass(frozen=True, slots=True)
class Expiration:
    """A disappearing-message setting: mode and timer in seconds."""

    mode: ExpirationMode = ExpirationMode.OFF
    seconds: int = 0

    def __post_init__(self) -> None:
        if self.mode != ExpirationMode.OFF and not (TIMER_MIN_S <= self.seconds <= TIMER_MAX_S):
            raise ValueError("a disappearing-message timer must be between 10 s and 14 days")
        if self.mode == ExpirationMode.OFF and self.seconds:
            raise ValueError("a timer needs a disappearing mode")

    @property
    def enabled(self) -> bool:
        return self.mode != ExpirationMode.OFF

    def ttl_ms(self) -> int:
        """Swarm TTL of a message carrying this setting (after-send: the timer)."""
        if self.mode == ExpirationMode.AFTER_SEND:
            return self.seconds * 1000
        return TTL_CONTENT_MS


OFF = Expiration()


# --------------------------------------------------------------------------- padding


def pad(data: bytes) -> bytes:
    """libsession padding: ``0x80`` then zeros up to the next multiple of 160 above len+1."""
    return protocol.pad(data)


def unpad(data: bytes) -> bytes:
    """Lenient unpadding (both padding variants; unpadded input is returned whole)."""
    return protocol.unpad(data)


# --------------------------------------------------------------------------- content builders


def _apply_expiration(c: pb.Content, exp: Expiration) -> None:
    if exp.enabled:
        c.expirationType = int(exp.mode)  # type: ignore[assignment]
        c.expirationTimer = exp.seconds


def set_profile(
    dm: pb.DataMessage | pb.MessageRequestResponse,
    display_name: str | None,
    avatar: tuple[str, bytes] | None = None,
) -> None:
    """Puts our display name and profile picture (URL in ``profile``, key in ``profileKey``)
    into an outgoing data message, as Session's clients send them with every visible one."""
    if display_name:
        dm.profile.displayName = display_name
    if avatar is not None:  # (file URL, 32-byte profile key), client spec §6.9
        dm.profile.profilePicture, dm.profileKey = avatar


def text(
    body: str,
    *,
    sent_ms: int,
    display_name: str | None = None,
    expiration: Expiration = OFF,
    sync_target: str | None = None,
    quote: tuple[int, str] | None = None,
    attachments: Sequence[pb.AttachmentPointer] = (),
    avatar: tuple[str, bytes] | None = None,
) -> pb.Content:
    """A visible text message, optionally with attachment pointers (the text is then their
    caption and may be empty) and our profile picture's URL and key."""
    if not body and not attachments:
        raise ValueError("message text is empty")
    if len(body) > MAX_BODY_CHARS:
        raise ValueError(f"message text is longer than {MAX_BODY_CHARS} characters")
    c = pb.Content(sigTimestamp=sent_ms)
    if body:
        c.dataMessage.body = body
    c.dataMessage.attachments.extend(attachments)
    set_profile(c.dataMessage, display_name, avatar)
    if sync_target:
        c.dataMessage.syncTarget = sync_target
    if quote:
        c.dataMessage.quote.id, c.dataMessage.quote.author = quote
    _apply_expiration(c, expiration)
    return c


def quote_of(dm: pb.DataMessage) -> tuple[int, str] | None:
    """The (sent time, author) a data message quotes, if it is a reply we can refer to."""
    if not dm.HasField("quote"):
        return None
    q = dm.quote
    if not 0 < q.id <= MAX_TIMESTAMP_MS or len(q.author) != 66:
        return None  # not a message anyone could have sent
    return int(q.id), q.author.lower()


def expiration_update(
    *, sent_ms: int, expiration: Expiration, sync_target: str | None = None
) -> pb.Content:
    """A conversation's disappearing-message setting changed (``EXPIRATION_TIMER_UPDATE``)."""
    c = pb.Content(sigTimestamp=sent_ms)
    c.dataMessage.flags = pb.DataMessage.EXPIRATION_TIMER_UPDATE
    if sync_target:
        c.dataMessage.syncTarget = sync_target
    _apply_expiration(c, expiration)
    if not expiration.enabled:
        c.expirationType = pb.Content.UNKNOWN
        c.expirationTimer = 0
    return c


def read_receipt(timestamps: Sequence[int], *, sent_ms: int) -> pb.Content:
    if not timestamps:
        raise ValueError("a read receipt needs at least one timestamp")
    c = pb.Content(sigTimestamp=sent_ms)
    c.receiptMessage.type = pb.ReceiptMessage.READ
    c.receiptMessage.timestamp.extend(timestamps)
    return c


def typing(started: bool, *, sent_ms: int) -> pb.Content:
    c = pb.Content(sigTimestamp=sent_ms)
    c.typingMessage.timestamp = sent_ms
    c.typingMessage.action = pb.TypingMessage.STARTED if started else pb.TypingMessage.STOPPED
    return c


def unsend(target_sent_ms: int, author: str, *, sent_ms: int) -> pb.Content:
    c = pb.Content(sigTimestamp=sent_ms)
    c.unsendRequest.timestamp = target_sent_ms
    c.unsendRequest.author = author
    return c


def request_response(
    *, sent_ms: int, display_name: str | None, avatar: tuple[str, bytes] | None = None
) -> pb.Content:
    """Accepting a message request, with our profile (name, picture) as Session sends it."""
    c = pb.Content(sigTimestamp=sent_ms)
    c.messageRequestResponse.isApproved = True
    set_profile(c.messageRequestResponse, display_name, avatar)
    return c


def check_display_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValueError("display name is empty")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"display name is longer than {MAX_NAME_BYTES} bytes")
    return name


# --------------------------------------------------------------------------- wrapping


def envelope_bytes(ciphertext: bytes, sent_ms: int) -> bytes:
    """``WebSocketMessage{REQUEST, body=Envelope{SESSION_MESSAGE, sent_ms, ciphertext}}``."""
    env = pb.Envelope(type=pb.Envelope.SESSION_MESSAGE, timestamp=sent_ms, content=ciphertext)
    ws = pb.WebSocketMessage(type=pb.WebSocketMessage.REQUEST)
    ws.request.verb = "PUT"
    ws.request.path = "/api/v1/message"
    ws.request.body = env.SerializeToString()
    ws.request.id = 0
    return ws.SerializeToString()


def seal(sender: Identity, recipient_id: str, content: pb.Content, sent_ms: int) -> str:
    """Encrypt ``content`` from ``sender`` (a ``session.identity.Identity``) to
    ``recipient_id`` and return the base64 ``data`` of the ``store`` request."""

    plaintext = pad(content.SerializeToString())
    ct = protocol.encrypt_for_recipient(sender, recipient_id, plaintext)
    raw = envelope_bytes(ct, sent_ms)
    if len(raw) > MAX_STORED_BYTES:
        raise ValueError("message is too large for the swarm (76,800 bytes)")
    return base64.b64encode(raw).decode()


def parse_stored(data_b64: str) -> pb.Envelope:
    """base64 → WebSocketMessage → Envelope (also accepts a bare Envelope)."""
    try:
        raw = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("stored message is not base64") from None
    try:
        ws = pb.WebSocketMessage.FromString(raw)
        body = ws.request.body if ws.HasField("request") and ws.request.body else raw
        env = pb.Envelope.FromString(body)
    except _PbDecodeError as e:
        raise DecodeError(f"stored message is not a Session envelope: {e}") from None
    if env.type != pb.Envelope.SESSION_MESSAGE or not env.content:
        raise DecodeError("stored message is not a 1:1 Session message")
    if env.timestamp > MAX_TIMESTAMP_MS:
        raise DecodeError("stored message has an impossible timestamp")
    return env


@dataclasses.dataclass(frozen=True, slots=True)
class Incoming:
    """One decrypted, verified message from the swarm."""

    hash: str
    sender: str  # Session ID recovered from the signature
    sent_ms: int  # Envelope timestamp (the sender's network clock)
    content: pb.Content
    expiration_ms: int = 0  # swarm expiry of the stored copy


@dataclasses.dataclass(frozen=True, slots=True)
class Undecryptable:
    """A stored message that could not be opened (kept only for reporting)."""

    hash: str
    reason: str


def _has_invalid_text(msg: Message) -> bool:
    """Whether a text field of ``msg`` (at any depth) holds bytes that are not UTF-8: Session's
    protobufs are proto2, where the parser hands such a field over as ``bytes`` instead of
    refusing it, and every reader of the field expects ``str``."""
    for field, value in msg.ListFields():
        values = value if field.is_repeated else (value,)
        if field.type == FieldDescriptor.TYPE_STRING:
            if any(not isinstance(v, str) for v in values):
                return True
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if any(_has_invalid_text(v) for v in values):
                return True
    return False


def _content(plaintext: bytes) -> pb.Content:
    try:
        content = pb.Content.FromString(unpad(plaintext))
    except _PbDecodeError as e:
        raise DecodeError(f"decrypted message is not a Content protobuf: {e}") from None
    if _has_invalid_text(content):
        raise DecodeError("decrypted message has text that is not valid UTF-8")
    return content


def open_stored(
    recipient: Identity, msg_hash: str, data_b64: str, expiration_ms: int = 0
) -> Incoming:
    """Decrypt and verify one stored message (raises a :class:`SessionError`)."""
    env = parse_stored(data_b64)
    pt, sender = protocol.decrypt_incoming(recipient, env.content)
    return Incoming(msg_hash, sender, env.timestamp, _content(pt), expiration_ms)


def open_many(
    recipient: Identity, stored: Sequence[tuple[str, str, int]]
) -> list[Incoming | Undecryptable]:
    """Batch version of :func:`open_stored` over ``(hash, data_b64, expiration_ms)`` rows:
    one native call decrypts and verifies all envelopes (GIL released)."""

    out: list[Incoming | Undecryptable | None] = [None] * len(stored)
    envs: list[tuple[int, pb.Envelope]] = []
    for i, (h, data, _) in enumerate(stored):
        try:
            envs.append((i, parse_stored(data)))
        except SessionError as e:
            out[i] = Undecryptable(h, str(e))
    results = protocol.decrypt_many(recipient, [e.content for _, e in envs]) if envs else []
    for (i, env), res in zip(envs, results, strict=True):
        h, _, exp = stored[i]
        if isinstance(res, BaseException):
            out[i] = Undecryptable(h, str(res))
            continue
        pt, sender = res
        try:
            out[i] = Incoming(h, sender, env.timestamp, _content(pt), exp)
        except SessionError as e:
            out[i] = Undecryptable(h, str(e))
    return [o for o in out if o is not None]


def expiration_of(content: pb.Content) -> Expiration:
    """The disappearing setting a received Content carries (OFF if none/invalid)."""
    if not content.HasField("expirationType") or content.expirationType == pb.Content.UNKNOWN:
        return OFF
    try:
        return Expiration(ExpirationMode(int(content.expirationType)), int(content.expirationTimer))
    except ValueError:
        return OFF
