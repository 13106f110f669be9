"""Recovery phrases (client spec §1.3): 16-byte seeds ↔ 13 English words.

Words are matched by their first three letters (so typos after the third letter are
harmless); the 13th word is a checksum. Legacy 32-byte seeds use 25 words.

The checksum word is mandatory (as in Session Desktop; libsession also takes 12 or 24 words):
a phrase with a word left out would otherwise decode to a different, empty account. A phrase
one word short raises :class:`~session.errors.MissingWord`, naming the positions where the word
can have been left out when the checksum narrows them down.
"""

from __future__ import annotations

import unicodedata
import zlib
from pathlib import Path

from session import _core
from session.errors import MissingWord

__all__ = ["WORDS", "decode", "encode"]


def _load_words() -> list[str]:
    # read beside the package, not through importlib.resources: that loads zipfile (with
    # shutil, bz2, lzma), 0.5-1.7 MB of a node's RSS (docs/performance.md, "A node's footprint")
    text = (Path(__file__).parent / "data" / "mnemonic-english.txt").read_text("utf-8")
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

    By default the phrase has 13 or 25 words (12 or 24 raise MissingWord);
    ``checksum=True``/``False`` decodes any word count with/without a trailing checksum word.
    Raises UnknownWord (naming the word and its 1-based position), ChecksumMismatch, MissingWord,
    or MnemonicError (word count, or a triple that does not fit 32 bits).
    """
    phrase = unicodedata.normalize("NFC", phrase)
    words = phrase.split()
    if checksum is None and len(words) in (12, 24):
        raise MissingWord(_missing_word_sentence(words))
    return _core.mnemonic_decode(phrase, checksum)


_INDEX = {w[:3]: i for i, w in enumerate(WORDS)}


def _valid_phrase(indices: list[int]) -> bool:
    """Whether word indices (data words, then the checksum word) form a valid phrase."""
    n = len(WORDS)
    data = indices[:-1]
    for t in range(0, len(data), 3):
        w1, w2, w3 = data[t : t + 3]
        x = w1 + n * ((n - w1 + w2) % n) + n * n * ((n - w2 + w3) % n)
        if x % n != w1 or x >= 2**32:
            return False
    crc = zlib.crc32("".join(WORDS[i][:3] for i in data).encode()) % len(data)
    return data[crc] == indices[-1]


def missing_word_positions(words: list[str]) -> list[int]:
    """1-based positions at which some word, put back, makes ``words`` (a phrase one word
    short) a valid phrase; empty if a word is not in the list."""
    try:
        idx = [_INDEX[w.lower()[:3]] for w in words]
    except KeyError:
        return []
    return [
        pos + 1
        for pos in range(len(idx) + 1)
        if any(_valid_phrase([*idx[:pos], cand, *idx[pos:]]) for cand in range(len(WORDS)))
    ]


def _missing_word_sentence(words: list[str]) -> str:
    full = len(words) + 1
    head = f"the recovery phrase has {len(words)} words but needs {full}: a word is missing"
    positions = missing_word_positions(words)
    if not positions or len(positions) == full:
        return (
            head + " (compare each word with your written phrase; the last one is a checksum word)"
        )
    if len(positions) == 1:
        return head + f" (word {positions[0]})"
    listed = ", ".join(str(p) for p in positions[:-1]) + f" or {positions[-1]}"
    return head + f" (word {listed})"
