"""Recovery phrases (client spec §1.3): 16-byte seeds ↔ 13 English words.

Words are matched by their first three letters (so typos after the third letter are
harmless); the 13th word is a checksum. Legacy 32-byte seeds use 25 words.
"""

from __future__ import annotations

import unicodedata
from importlib import resources

from session import _core

__all__ = ["WORDS", "decode", "encode"]


def _load_words() -> list[str]:
    text = resources.files("session").joinpath("data/mnemonic-english.txt").read_text("utf-8")
    return [w for w in (line.strip() for line in text.splitlines()) if w]


#: The 1626-word English list (alphabetical; 3-letter prefixes are unique).
WORDS: list[str] = _load_words()


def encode(seed: bytes, *, checksum: bool = True) -> str:
    """Words for a seed: 16 bytes → 13 words, 32 bytes → 25 words.

    Any non-empty multiple of 4 bytes is accepted (3 words per 4 bytes); ``checksum=False``
    leaves out the checksum word. Other lengths raise InvalidInput."""
    return _core.mnemonic_encode(bytes(seed), checksum)


def decode(phrase: str, *, checksum: bool | None = None) -> bytes:
    """The seed of a recovery phrase (any whitespace, any letter case).

    By default the phrase has 13 or 25 words (12 or 24 are accepted without the checksum
    word, as libsession does); ``checksum=True``/``False`` decodes any word count with/without
    a trailing checksum word. Raises UnknownWord (naming the word and its 1-based position),
    ChecksumMismatch, or MnemonicError (word count, or a triple that does not fit 32 bits).
    """
    return _core.mnemonic_decode(unicodedata.normalize("NFC", phrase), checksum)
