"""Session accounts: seed → Ed25519/X25519 keys → Session ID (client spec §1).

::

    me = Identity.generate()                 # a new account (16 random bytes)
    me.mnemonic                              # 13-word recovery phrase to show the user
    same = Identity.from_mnemonic(phrase)    # restore
    me.session_id                            # "05" + 64 hex
    sig = me.sign(b"...")                    # Ed25519
    verify(me.ed25519_public, b"...", sig)   # raises InvalidSignature on failure

The keys live inside the native core (zeroized when the object is dropped); only
:meth:`Identity.seed` exports secret material, for key files.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

from session import _core, mnemonic

__all__ = ["Identity", "ed25519_to_x25519", "parse_session_id", "verify", "verify_many"]


class Identity(_core.Identity):
    """One account's keys.

    Create with :meth:`generate`, :meth:`from_seed` or :meth:`from_mnemonic` (calling the
    class directly works too: ``Identity()`` is ``generate()``). Properties:
    ``session_id`` (str), ``mnemonic`` (str), ``ed25519_public`` and ``x25519_public``
    (32 bytes each). Two identities are equal when their Session IDs are. ``repr`` shows only
    the Session ID.
    """

    __slots__ = ()

    @classmethod
    def generate(cls) -> Self:
        """A new account from 16 random bytes (13-word recovery phrase)."""
        return cls()

    @classmethod
    def from_seed(cls, seed: bytes) -> Self:
        """Restore from a 16-byte recovery seed (zero-padded to the 32-byte Ed25519 seed, as
        Session does) or a legacy 32-byte Ed25519 seed. Other lengths raise InvalidInput."""
        return cls(bytes(seed))

    @classmethod
    def from_mnemonic(cls, phrase: str) -> Self:
        """Restore from a recovery phrase (13 or 25 words; the checksum word is mandatory).

        Raises UnknownWord, ChecksumMismatch, MissingWord (a 12/24-word phrase, naming where
        the word can be missing) or MnemonicError (all ValueError)."""
        return cls.from_seed(mnemonic.decode(phrase))

    def blinded15_id(self, server_pubkey_hex: str) -> str:
        """This account's "15"-blinded ID on the community server with that X25519 key."""
        from session import blinding  # noqa: PLC0415 - optional dependency between modules

        return blinding.blinded15_id(self, server_pubkey_hex)


def verify(ed25519_public: bytes, message: bytes, signature: bytes) -> None:
    """Check a detached Ed25519 signature with libsodium's acceptance rules.

    Raises :class:`~session.errors.InvalidSignature` if it does not verify, InvalidKey /
    InvalidInput if the key is not 32 bytes or the signature not 64."""
    _core.ed25519_verify(bytes(ed25519_public), bytes(message), bytes(signature))


def verify_many(items: Iterable[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """Verify many ``(public key, message, signature)`` triples in one call (GIL released; from
    8 items on spread over all cores).

    Items with a key or signature of the wrong length are ``False``."""
    return _core.ed25519_verify_many([(bytes(k), bytes(m), bytes(s)) for k, m, s in items])


def parse_session_id(text: str) -> bytes:
    """Validate a user's Session ID ("05" + 64 hex digits) and return its 32-byte X25519
    public key. Raises :class:`~session.errors.InvalidSessionID` saying what is wrong."""
    if not isinstance(text, str):
        raise TypeError(f"a Session ID is a str, not {type(text).__name__}")
    return _core.parse_session_id(text)


def ed25519_to_x25519(ed25519_public: bytes) -> bytes:
    """The X25519 public key of an Ed25519 public key (libsodium's conversion).

    Raises InvalidKey for a key that is not 32 bytes, not a curve point, or low-order."""
    return _core.ed25519_pk_to_x25519(bytes(ed25519_public))
