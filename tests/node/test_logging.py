"""Logging: redaction of addresses and Session IDs, JSON/console output, unsafe mode."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session.service.logs import ID_MASK, IP_MASK, redact, setup_logging

SID = "05" + "ab12" * 16


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from 203.0.113.7:5678 ok", f"from {IP_MASK}:5678 ok"),
        ("peer [2001:db8::1]:443.", f"peer [{IP_MASK}]:443."),
        ("v6 ::1 and fe80::1%eth0", f"v6 {IP_MASK} and {IP_MASK}"),
        ("mapped ::ffff:10.0.0.1 end", f"mapped {IP_MASK} end"),
        ("full 2001:0db8:0000:0000:0000:ff00:0042:8329", f"full {IP_MASK}"),
        (f"account {SID} stored", f"account {ID_MASK} stored"),
        (f"ids {SID},{SID.upper()}", f"ids {ID_MASK},{ID_MASK}"),
    ],
)
def test_redacts(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "at 12:30:45 done",
        "time 2024-01-01T12:30:45.123Z",
        "mac aa:bb:cc:dd:ee:ff",
        "version 1.2.3.4.5 and 999.1.1.1",
        "node key " + "ab" * 32,  # 64-hex node keys are public
        "height 12345 swarm 18446744073709551615",
        "Error::Foo in module::func",
    ],
)
def test_leaves_other_text_alone(text: str) -> None:
    assert redact(text) == text


@given(
    st.ip_addresses(),
    st.text(alphabet=" ,;()[]=\t", max_size=3),
    st.text(alphabet=" ,;()[]=\t", max_size=3),
)
def test_any_ip_address_is_masked(addr: object, left: str, right: str) -> None:
    text = f"x{left or ' '}{addr}{right or ' '}y"
    out = redact(text)
    assert str(addr) not in out
    assert IP_MASK in out


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    old_level = root.level
    yield stream
    for h in list(root.handlers):
        if getattr(h, "_session_handler", False):
            root.removeHandler(h)
    root.setLevel(old_level)


def test_json_lines_redacted(capture: io.StringIO) -> None:
    setup_logging("debug", "json", stream=capture)
    log = logging.getLogger("session.test")
    log.info("client %s asked for %s", "198.51.100.4", SID, extra={"peer": "2001:db8::7"})
    try:
        raise RuntimeError("boom from 192.0.2.1")
    except RuntimeError:
        log.exception("failed for %s", SID)
    lines = [json.loads(line) for line in capture.getvalue().splitlines()]
    assert lines[0]["msg"] == f"client {IP_MASK} asked for {ID_MASK}"
    assert lines[0]["level"] == "info" and lines[0]["logger"] == "session.test"
    assert lines[0]["peer"] == IP_MASK
    assert "ts" in lines[0]
    assert "192.0.2.1" not in lines[1]["exc"] and IP_MASK in lines[1]["exc"]
    raw = capture.getvalue()
    assert "198.51.100.4" not in raw and SID not in raw and "2001:db8::7" not in raw


def test_unsafe_logging_keeps_values(capture: io.StringIO) -> None:
    setup_logging("info", "console", unsafe=True, stream=capture)
    logging.getLogger("session.test").warning("client %s id %s", "198.51.100.4", SID)
    out = capture.getvalue()
    assert "198.51.100.4" in out and SID in out and "WARNING" in out


def test_level_and_single_handler(capture: io.StringIO) -> None:
    setup_logging("warning", "console", stream=capture)
    setup_logging("warning", "console", stream=capture)  # replaces, does not stack
    log = logging.getLogger("session.test")
    log.info("hidden")
    log.error("shown")
    assert capture.getvalue().count("shown") == 1 and "hidden" not in capture.getvalue()


def test_auto_format_is_json_off_tty(capture: io.StringIO) -> None:
    setup_logging("info", "auto", stream=capture)
    logging.getLogger("session.test").info("hello")
    assert json.loads(capture.getvalue())["msg"] == "hello"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="level"):
        setup_logging("loud", "json", stream=io.StringIO())
    with pytest.raises(ValueError, match="format"):
        setup_logging("info", "xml", stream=io.StringIO())
