"""session.text.for_terminal: the one sanitiser for someone else's text on a terminal."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from session.text import MIXED_SCRIPT_MARK, for_terminal, mixed_script

ATTACK = "\033[2J\033[H\033[31mSYSTEM: your account is locked"


def unsafe(ch: str, multiline: bool) -> bool:
    """A character that must never reach the terminal."""
    if ch == "\n":
        return not multiline
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp") and ch != "\u200d"


def test_escape_sequences_are_shown_not_run() -> None:
    out = for_terminal(ATTACK)
    assert "\033" not in out
    assert out == "␛[2J␛[H␛[31mSYSTEM: your account is locked"


def test_osc_and_c1_introducers() -> None:
    osc = "\033]0;pwned\007title"  # set the window title, BEL-terminated
    assert for_terminal(osc) == "␛]0;pwned␇title"
    assert for_terminal("\x9b2J\x9d0;x\x9c") == "⟨U+009B⟩2J⟨U+009D⟩0;x⟨U+009C⟩"
    assert for_terminal("a\rb\x08c\x7f") == "a␍b␈c␡"


def test_newlines_and_tabs() -> None:
    assert for_terminal("one\ntwo") == "one␤two"
    # a further line is marked: "\n12:00 Bob: …" cannot pass for a line of the program's own
    assert for_terminal("one\ntwo", multiline=True) == "one\n    │ two"
    assert for_terminal("a\tb") == "a b"


def test_bidi_and_invisible_characters_are_visible() -> None:
    # "invoice_" + U+202E + "fdp.exe" would display as "invoice_exe.pdf"
    assert for_terminal("invoice_\u202efdp.exe") == "invoice_⟨U+202E⟩fdp.exe"
    for ch in "\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c":
        assert for_terminal(f"x{ch}y") == f"x⟨U+{ord(ch):04X}⟩y"
    for ch in "\u200b\u2060\ufeff\u00ad\u3164\U000e0041\u2028\u2029":
        assert for_terminal(f"x{ch}y") == f"x⟨U+{ord(ch):04X}⟩y"
    assert for_terminal("\ud800") == "⟨U+D800⟩"  # a lone surrogate would not even encode


def test_zero_width_joiner_only_inside_emoji() -> None:
    woman_technologist = "\U0001f469\u200d\U0001f4bb"
    assert for_terminal(woman_technologist) == woman_technologist
    assert for_terminal("ad\u200dmin") == "ad⟨U+200D⟩min"


def test_zalgo_is_cut() -> None:
    out = for_terminal("e" + "\u0301" * 50 + "x")
    assert out == "e" + "\u0301" * 4 + "⟨…⟩x"
    assert for_terminal("é") == "é"  # an ordinary accent is untouched


def test_ordinary_text_is_unchanged() -> None:
    for s in ("hello", "Grüße, 世界! 👍", "Привет", "مرحبا", "a  b"):
        assert for_terminal(s) == s
        assert for_terminal(s, multiline=True) == s


def test_display_names_fold_confusables_and_mark_mixed_scripts() -> None:
    assert for_terminal("Ａｄｍｉｎ", name=True) == "Admin"
    assert for_terminal("𝐀𝐝𝐦𝐢𝐧", name=True) == "Admin"
    assert for_terminal("\u0410lice", name=True) == "\u0410lice" + MIXED_SCRIPT_MARK  # Cyrillic А
    assert for_terminal("Алиса", name=True) == "Алиса"
    assert for_terminal("Alice 山田", name=True) == "Alice 山田"
    assert mixed_script("pаypal") and not mixed_script("paypal")
    assert for_terminal("Bob\033[2J", name=True) == "Bob␛[2J"


@given(st.text(), st.booleans(), st.booleans())
def test_nothing_unsafe_survives(text: str, multiline: bool, name: bool) -> None:
    out = for_terminal(text, multiline=multiline, name=name)
    assert not [ch for ch in out if unsafe(ch, multiline)]
    out.encode("utf-8")  # always printable on a UTF-8 terminal


@given(
    st.text(
        alphabet=st.characters(
            categories=("L", "N", "P", "Zs"), exclude_characters="\u3164\u115f\u1160\uffa0"
        )
    )
)
def test_plain_text_passes_through(text: str) -> None:
    assert for_terminal(text) == text
