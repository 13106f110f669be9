"""session.mnemonic: vectors (mnemonic.json, TV-05..TV-09), round trips, error reporting,
word list pinning and "garbage never crashes"."""

from __future__ import annotations

import hashlib
import re
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session import _core, mnemonic
from session.errors import (
    ChecksumMismatch,
    InvalidInput,
    MissingWord,
    MnemonicError,
    SessionError,
    UnknownWord,
)
from session.identity import Identity
from vectorlib import case_ids, load_vectors

ENCODE = load_vectors("mnemonic", "encode")
DECODE = load_vectors("mnemonic", "decode")
DECODE_FAIL = load_vectors("mnemonic", "decode_fail")
ERRORS = {"checksum": ChecksumMismatch, "unknown_word": UnknownWord, "overflow": MnemonicError}


def test_word_list_matches_core_and_spec() -> None:
    words = mnemonic.WORDS
    assert words == _core.mnemonic_words()
    assert len(words) == 1626
    assert words[:3] == ["abbey", "abducts", "ability"]
    assert words[-3:] == ["zombie", "zones", "zoom"]
    assert len({w[:3] for w in words}) == 1626
    assert words == sorted(words)


@pytest.mark.parametrize("case", ENCODE, ids=case_ids(ENCODE))
def test_encode_vectors(case: dict) -> None:
    seed = bytes.fromhex(case["seed"])
    words = mnemonic.encode(seed, checksum=case["checksum"])
    assert words == case["words"]
    if "indices" in case:
        assert [mnemonic.WORDS.index(w) for w in words.split()] == case["indices"]
    assert mnemonic.decode(words, checksum=case["checksum"]) == seed
    if case["checksum"]:
        assert mnemonic.decode(words) == seed
        assert mnemonic.encode(seed) == words


@pytest.mark.parametrize("case", DECODE, ids=case_ids(DECODE))
def test_decode_vectors(case: dict) -> None:
    assert mnemonic.decode(case["words"]).hex() == case["seed"]


@pytest.mark.parametrize("case", DECODE_FAIL, ids=case_ids(DECODE_FAIL))
def test_decode_fail_vectors(case: dict) -> None:
    with pytest.raises(ERRORS[case["error"]]):
        mnemonic.decode(case["words"], checksum=case.get("checksum", True))


def test_unknown_word_names_word_and_position() -> None:
    phrase = "amaze buffet cake entrance symptoms tiger qqqq maze nestle python dusted faxed faxed"
    with pytest.raises(UnknownWord, match=r'word 7 .*"qqqq"'):
        mnemonic.decode(phrase)


def test_overflow_names_the_words() -> None:
    with pytest.raises(MnemonicError, match="words 1-3"):
        mnemonic.decode("abbey abbey zoom", checksum=False)


@pytest.mark.parametrize("count", [0, 1, 11, 14, 23, 26, 48])
def test_wrong_word_count(count: int) -> None:
    with pytest.raises(MnemonicError, match=f"got {count}"):
        mnemonic.decode(" ".join(["abbey"] * count))


def test_case_and_whitespace_insensitive() -> None:
    phrase = mnemonic.encode(bytes(range(16)))
    messy = "  " + "\t".join(w.upper() for w in phrase.split()) + "\n"
    assert mnemonic.decode(messy) == bytes(range(16))


def test_twelve_words_without_checksum() -> None:
    # Only as an explicit word list: a recovery phrase needs its checksum word (next test).
    phrase = mnemonic.encode(bytes(range(16)))
    assert mnemonic.decode(" ".join(phrase.split()[:12]), checksum=False) == bytes(range(16))


@pytest.mark.parametrize("gap", range(13))
def test_phrase_with_a_word_missing_is_refused(gap: int) -> None:
    words = mnemonic.encode(bytes(range(16))).split()
    short = " ".join(words[:gap] + words[gap + 1 :])
    with pytest.raises(MissingWord, match="has 12 words but needs 13: a word is missing") as e:
        mnemonic.decode(short)
    with pytest.raises(MissingWord):
        Identity.from_mnemonic(short)
    # where the sentence names positions, the real gap is among them
    named = re.findall(r"\d+", str(e.value).split("missing", 1)[1])
    if named:
        assert str(gap + 1) in named
    assert gap + 1 in mnemonic.missing_word_positions(words[:gap] + words[gap + 1 :])


def test_missing_checksum_word_is_located() -> None:
    """Without its checksum word the last word copies no other, which narrows the gap down."""
    words = mnemonic.encode(bytes.fromhex("7728d972721b98816a328c46c1995135")).split()
    positions = mnemonic.missing_word_positions(words[:12])
    assert 13 in positions and len(positions) < 13
    with pytest.raises(MissingWord, match=r"\(word [\d, ]*(or )?13\)"):
        mnemonic.decode(" ".join(words[:12]))


def test_legacy_phrase_with_a_word_missing_is_refused() -> None:
    words = mnemonic.encode(bytes(range(32))).split()
    with pytest.raises(MissingWord, match="has 24 words but needs 25"):
        mnemonic.decode(" ".join(words[1:]))


def test_checksum_word_is_crc32_of_prefixes() -> None:
    words = mnemonic.encode(bytes.fromhex("7728d972721b98816a328c46c1995135")).split()
    idx = zlib.crc32("".join(w[:3] for w in words[:12]).encode()) % 12
    assert words[12] == words[idx]


def test_wordlist_pin_sha512_seed() -> None:
    (case,) = [c for c in ENCODE if c["name"] == "wordlist_pin_48_words"]
    seed = hashlib.sha512(b"libsession-util mnemonic test vector").digest()
    assert seed.hex() == case["seed"]
    assert mnemonic.encode(seed, checksum=False) == case["words"]


@pytest.mark.parametrize("length", [0, 3, 15, 17, 30])
def test_encode_bad_length(length: int) -> None:
    with pytest.raises(InvalidInput):
        mnemonic.encode(bytes(length))


@given(st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32))
def test_round_trip(seed: bytes) -> None:
    phrase = mnemonic.encode(seed)
    assert len(phrase.split()) == (13 if len(seed) == 16 else 25)
    assert mnemonic.decode(phrase) == seed


@given(st.binary(min_size=16, max_size=16), st.data())
def test_typos_after_prefix_are_tolerated(seed: bytes, data: st.DataObject) -> None:
    words = mnemonic.encode(seed).split()
    i = data.draw(st.integers(0, 12))
    tail = data.draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", max_size=6))
    words[i] = words[i][:3] + tail
    assert mnemonic.decode(" ".join(words)) == seed


@given(st.binary(min_size=16, max_size=16), st.data())
def test_single_word_substitution_is_caught_or_harmless(seed: bytes, data: st.DataObject) -> None:
    words = mnemonic.encode(seed).split()
    i = data.draw(st.integers(0, 12))
    words[i] = data.draw(st.sampled_from(mnemonic.WORDS))
    try:
        out = mnemonic.decode(" ".join(words))
    except (ChecksumMismatch, MnemonicError):
        return
    # accepted only if the substitution kept the decoded seed or the checksum still matches
    if i == 12:
        assert out == seed
    else:
        assert mnemonic.encode(out).split()[:12] == words[:12]


@given(st.text(max_size=200))
def test_garbage_never_crashes(text: str) -> None:
    try:
        out = mnemonic.decode(text)
    except SessionError as e:
        assert isinstance(e, MnemonicError)
    else:
        assert len(out) in (16, 32)


@given(st.lists(st.sampled_from(mnemonic.WORDS), min_size=12, max_size=25))
def test_random_word_lists_never_crash(words: list[str]) -> None:
    try:
        mnemonic.decode(" ".join(words))
    except MnemonicError:
        pass
