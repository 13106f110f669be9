"""Making someone else's text safe to print on a terminal.

:func:`for_terminal` is the one function every piece of text that came from someone else
(message bodies, display names, quotes, file, group and room names, error messages that echo
them) passes before it reaches a terminal. Text is never dropped silently: what a terminal would
interpret, or what a person could not see, is replaced by a visible stand-in, so a trick shows up
as a trick instead of working or vanishing.

What it does, character by character (no parsing is needed: once no ESC, C1 or BEL character
reaches the terminal, the rest of an escape sequence is plain printable text):

* C0 controls (U+0000–U+001F) and DEL become their Unicode control pictures (``ESC`` → ``␛``,
  ``BEL`` → ``␇``, ``CR`` → ``␍``, …), so ``\\033[2J\\033[H`` prints as ``␛[2J␛[H`` and clears
  nothing. A newline is kept only with ``multiline=True`` (else ``␤``), and the line after it
  starts with :data:`CONTINUATION`; a tab becomes a space.
* C1 controls (U+0080–U+009F, which include the 8-bit CSI and OSC introducers), bidirectional
  overrides, embeddings, isolates and marks (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
  U+061C), zero-width and other invisible format characters (general category ``Cf``: U+200B,
  U+2060, U+FEFF, U+00AD, tag characters, …), line/paragraph separators, Hangul fillers,
  private-use, unassigned and lone surrogate code points become ``⟨U+XXXX⟩``. A zero-width
  joiner between two symbols is kept (emoji sequences such as 👩‍💻 use it).
* Runs of more than :data:`MAX_COMBINING` combining marks on one character ("zalgo" text that
  paints over the lines around it) are cut, with ``⟨…⟩`` marking the cut.

Confusables: display names (``name=True``) are also NFKC-normalised, which folds fullwidth,
mathematical and other compatibility look-alikes (``Ａｄｍｉｎ``, ``𝐀𝐝𝐦𝐢𝐧`` → ``Admin``), and a name
whose letters mix the homoglyph-prone Latin, Cyrillic and Greek scripts (``Аlice`` with a
Cyrillic ``А``) is marked with :data:`MIXED_SCRIPT_MARK`. Message bodies are not normalised
(that would change what the sender wrote); single look-alike characters within one script are
left alone, since no rule tells them from honest text.

``--json`` output does not use this function: JSON escapes control characters itself and a
program reading it gets the exact text.
"""

from __future__ import annotations

import unicodedata

__all__ = ["CONTINUATION", "MAX_COMBINING", "MIXED_SCRIPT_MARK", "for_terminal", "mixed_script"]

#: Combining marks kept on one base character.
MAX_COMBINING = 4
#: Appended to a display name that mixes Latin, Cyrillic or Greek letters.
MIXED_SCRIPT_MARK = " ⚠mixed scripts"

_ZWJ = "\u200d"
#: Invisible or direction-changing characters that are not in category Cf/Cc/Zl/Zp.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u034f\u2800")
_CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})


def _visible(ch: str) -> str:
    return f"⟨U+{ord(ch):04X}⟩"


def _emoji_side(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk") or ch == "\ufe0f"


#: Starts each further line of someone's multi-line text (``multiline=True``), so that a line
#: they wrote can never pass for a line of the program's own ("12:00 Bob: …", a file line).
CONTINUATION = "    │ "


def for_terminal(text: str, *, multiline: bool = False, name: bool = False) -> str:
    """``text`` with everything a terminal would interpret, or a person could not see, shown
    visibly (see the module doc). ``multiline``: keep newlines, each further line starting
    with :data:`CONTINUATION`; ``name``: a display name (NFKC-normalised, mixed scripts
    marked)."""
    if name:
        text = unicodedata.normalize("NFKC", text)
    out: list[str] = []
    combining = 0
    n = len(text)
    for i, ch in enumerate(text):
        o = ord(ch)
        cat = unicodedata.category(ch)
        if cat in ("Mn", "Me"):
            combining += 1
            if combining == MAX_COMBINING + 1:
                out.append("⟨…⟩")
            if combining > MAX_COMBINING:
                continue
            out.append(ch)
            continue
        combining = 0
        if ch == "\n":
            out.append("\n" + CONTINUATION if multiline else "␤")
        elif ch == "\t":
            out.append(" ")
        elif o < 0x20:
            out.append(chr(0x2400 + o))
        elif o == 0x7F:
            out.append("␡")
        elif ch == _ZWJ and 0 < i < n - 1 and _emoji_side(text[i - 1]) and _emoji_side(text[i + 1]):
            out.append(ch)
        elif cat in ("Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp") or ch in _INVISIBLE:
            out.append(_visible(ch))
        else:
            out.append(ch)
    cleaned = "".join(out)
    if name and mixed_script(cleaned):
        cleaned += MIXED_SCRIPT_MARK
    return cleaned


def mixed_script(text: str) -> bool:
    """Whether the letters of ``text`` come from more than one of Latin, Cyrillic and Greek
    (the scripts whose letters are look-alikes of each other)."""
    scripts = set()
    for ch in text:
        if unicodedata.category(ch).startswith("L"):
            script = unicodedata.name(ch, "").split(" ", 1)[0]
            if script in _CONFUSABLE_SCRIPTS:
                scripts.add(script)
    return len(scripts) > 1


def duration(seconds: int) -> str:
    """A disappearing-message timer in words ("1 day", "5 minutes", "90 seconds", "off")."""
    if seconds <= 0:
        return "off"
    for unit, n in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % n == 0:
            k = seconds // n
            return f"{k} {unit}{'s' if k != 1 else ''}"
    return f"{seconds} seconds"
