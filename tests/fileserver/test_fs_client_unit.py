"""The node list's ``file_servers`` field and the attachment URLs of :mod:`session.client.files`
(no network)."""

from __future__ import annotations

import pytest

from session.client import files
from session.errors import DecodeError, InvalidInput
from session.proto.snodes import FileServer, parse_file_servers, parse_node_list

FS = FileServer("https://127.0.0.1:4433", "aa" * 32, "bb" * 32)


def test_parse_file_servers_top_level_inside_result_or_absent() -> None:
    entry = FS.to_json()
    assert parse_file_servers({"file_servers": [entry]}) == [FS]
    assert parse_file_servers({"result": {"file_servers": [entry]}}) == [FS]
    assert parse_file_servers({"result": {"service_node_states": []}}) == []
    # The node list parser ignores the field.
    assert parse_node_list({"result": {"service_node_states": []}, "file_servers": [entry]}) == []


@pytest.mark.parametrize(
    "doc",
    [
        {"file_servers": {}},
        {"file_servers": [1]},
        {"file_servers": [{**FS.to_json(), "url": "ftp://x"}]},
        {"file_servers": [{**FS.to_json(), "pubkey_x25519": "zz"}]},
    ],
)
def test_malformed_file_servers_are_decode_errors(doc: dict[str, object]) -> None:
    with pytest.raises(DecodeError):
        parse_file_servers(doc)


def test_file_urls_round_trip_and_unknown_servers_are_refused() -> None:
    fid = "A" * 44
    assert (
        files.file_url(files.DEFAULT_FILE_SERVER, fid) == f"http://filev2.getsession.org/file/{fid}"
    )
    url = files.file_url(FS, fid)
    assert url == f"https://127.0.0.1:4433/file/{fid}#p={'aa' * 32}"
    assert files.parse_file_url(url, [FS]) == (FS, fid)
    assert files.parse_file_url(f"http://filev2.getsession.org/file/{fid}") == (
        files.DEFAULT_FILE_SERVER,
        fid,
    )
    with pytest.raises(InvalidInput, match="does not know"):
        files.parse_file_url(url)  # not in `known`
    with pytest.raises(InvalidInput, match="does not know"):
        files.parse_file_url(f"https://127.0.0.1:4433/file/{fid}#p={'cc' * 32}", [FS])
    with pytest.raises(InvalidInput, match="/file/<id>"):
        files.parse_file_url("https://127.0.0.1:4433/elsewhere", [FS])
