"""The service-node list parser (session/proto/snodes.py): an entry whose ``public_ip`` is not
an IPv4 or IPv6 address is refused like any other malformed entry (a DecodeError naming the
field, the whole list refused as for a bad key or port), before it can reach ZeroMQ or HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from session.errors import DecodeError
from session.proto.snodes import ServiceNode, parse_node_list


def _entry(ip: Any) -> dict[str, Any]:
    return {
        "pubkey_ed25519": "ab" * 32,
        "pubkey_x25519": "cd" * 32,
        "public_ip": ip,
        "storage_port": 443,
        "storage_lmq_port": 22020,
        "swarm_id": 7,
    }


@pytest.mark.parametrize("ip", ["10.0.0.1", "127.0.0.1", "::1", "2001:db8::5"])
def test_an_ipv4_or_ipv6_address_is_listed(ip: str) -> None:
    (node,) = parse_node_list({"service_node_states": [_entry(ip)]})
    assert node.public_ip == ip


@pytest.mark.parametrize(
    ("ip", "host"), [("10.0.0.1", "10.0.0.1"), ("::1", "[::1]"), ("2001:db8::5", "[2001:db8::5]")]
)
def test_a_nodes_addresses_put_an_ipv6_address_in_brackets(ip: str, host: str) -> None:
    (node,) = parse_node_list({"service_node_states": [_entry(ip)]})
    assert node.https_url == f"https://{host}:443"
    assert node.zmq_address == f"tcp://{host}:22020"
    assert urlsplit(node.https_url).hostname == ip


@pytest.mark.parametrize(
    "ip",
    ["no such host", "localhost", "127.0.1", "1.2.3.4.5", "", "10.0.0.1:22020", "tcp://1.2.3.4", 7],
)
def test_a_public_ip_that_is_not_an_address_is_a_decode_error(ip: Any) -> None:
    with pytest.raises(DecodeError, match=r"^service node public_ip must be an IPv4 or IPv6"):
        ServiceNode.from_json(_entry(ip))
    good = _entry("10.0.0.2")
    with pytest.raises(DecodeError, match="public_ip"):
        parse_node_list({"service_node_states": [good, _entry(ip)]})
