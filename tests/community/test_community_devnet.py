"""The community server on a devnet, used as Session's apps use it: nodes.json lists it with
the lobby's join URL; a member posts and polls with one signed ``/sequence`` through a 3-hop
onion path; and the server's database and logs hold the member's blinded ID only, never the
Session ID."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest

from session import onion
from session.blinding import blind15_sign, blinded15_id, sogs_auth_headers
from session.client.network import NetworkClock
from session.client.paths import PathManager
from session.client.transport import OnionTransport
from session.devnet import Devnet
from session.identity import Identity
from session.proto.snodes import CommunityServer, parse_community_servers, parse_node_list
from session.protocol import pad

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    with Devnet(
        tmp_path_factory.mktemp("community-devnet"), nodes=4, poll_interval=0.5, file_server=False
    ) as net:
        yield net


@pytest.fixture
def listed(devnet: Devnet) -> CommunityServer:
    (cs,) = parse_community_servers(json.loads((devnet.dir / "nodes.json").read_text()))
    return cs


@pytest.fixture
async def transport(devnet: Devnet) -> AsyncIterator[OnionTransport]:
    doc = json.loads((devnet.dir / "nodes.json").read_text())
    t = OnionTransport(PathManager(parse_node_list(doc)), NetworkClock())
    yield t
    await t.close()


def test_nodes_json_lists_the_server_and_the_lobby(devnet: Devnet, listed: CommunityServer) -> None:
    cs = devnet.community
    assert cs is not None and cs.data_dir == devnet.dir / "community"
    assert listed.url == f"http://127.0.0.1:{cs.port}"
    assert listed.rooms == {"lobby": f"{listed.url}/lobby?public_key={listed.public_key}"}
    assert f"127.0.0.1:{cs.port}" in devnet.proxy_allow


async def _call(
    transport: OnionTransport,
    server: CommunityServer,
    member: Identity,
    method: str,
    endpoint: str,
    doc: object = None,
) -> tuple[int, bytes]:
    body = None if doc is None else json.dumps(doc).encode()
    url = urlsplit(server.url)
    assert url.hostname is not None and url.port is not None
    dest = onion.ServerDestination(
        url.hostname, "/oxen/v4/lsrpc", bytes.fromhex(server.public_key), url.scheme, url.port
    )
    headers = sogs_auth_headers(member, server.public_key, method, endpoint, body or b"")
    status, _, payload = await transport.request_server(
        dest, {"method": method, "endpoint": endpoint, "headers": headers}, body, timeout=20
    )
    return status, payload


async def test_post_and_poll_through_onion_paths_and_no_session_id_is_kept(
    devnet: Devnet, listed: CommunityServer, transport: OnionTransport
) -> None:
    alice = Identity.generate()
    data = pad(b"hello from the devnet")
    post = {
        "data": base64.b64encode(data).decode(),
        "signature": base64.b64encode(blind15_sign(alice, listed.public_key, data)).decode(),
    }
    status, payload = await _call(transport, listed, alice, "POST", "/room/lobby/message", post)
    assert status == 201, payload
    blinded = blinded15_id(alice, listed.public_key)
    assert json.loads(payload)["session_id"] == blinded
    poll = [
        {"method": "GET", "path": "/capabilities"},
        {"method": "GET", "path": "/room/lobby/pollInfo/0"},
        {"method": "GET", "path": "/room/lobby/messages/since/0?t=r&reactors=4"},
    ]
    status, payload = await _call(transport, listed, alice, "POST", "/sequence", poll)
    assert status == 200
    answers = json.loads(payload)
    assert [a["code"] for a in answers] == [200, 200, 200]
    assert "blind" in answers[0]["body"]["capabilities"]
    (msg,) = answers[2]["body"]
    assert msg["session_id"] == blinded and base64.b64decode(msg["data"]) == data
    # What the server keeps: the blinded ID, never the Session ID (nor its key's hex).
    assert devnet.community is not None
    root = devnet.community.data_dir
    db = sqlite3.connect(f"file:{root / 'store' / 'community.db'}?mode=ro", uri=True)
    try:
        users = [r[0] for r in db.execute("SELECT session_id FROM users")]
    finally:
        db.close()
    assert blinded in users
    secrets = (alice.session_id, alice.session_id[2:], bytes(alice.ed25519_public).hex())
    for path in [*(root / "store").iterdir(), root / "process.log"]:
        if path.is_file():
            raw = path.read_bytes()
            for s in secrets:
                assert s.encode() not in raw and bytes.fromhex(s[-64:]) not in raw, path
