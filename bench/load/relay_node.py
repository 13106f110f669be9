"""A bare relay process for the relay benchmark: node links + onion router, nothing else.

Reads one JSON line on stdin: ``{"secret": hex, "public": hex, "nodes": [ServiceNode JSON...]}``,
prints ``{"port": N, "pid": P}``, relays until stdin closes. Uses uvloop unless --no-uvloop.
With ``--profile FILE`` it writes a cProfile of the relay loop on exit.
"""

from __future__ import annotations

import asyncio
import json
import sys


async def main() -> None:
    from session.node.links import KIND_ONION, NodeLinks
    from session.node.relay import OnionRouter, PeelPool
    from session.onion import Peeler
    from session.proto.snodes import ServiceNode
    from session.testing.rpc import FixedSwarmView

    cfg = json.loads(sys.stdin.readline())
    nodes = [ServiceNode.from_json(n) for n in cfg["nodes"]]
    view = FixedSwarmView("", nodes)  # the relay itself is not listed: it only relays
    known_x = {n.pubkey_x25519 for n in nodes}

    async def authorize(key: bytes) -> bool:
        return key.hex() in known_x

    secret = bytes.fromhex(cfg["secret"])
    links = NodeLinks(
        public_x25519=bytes.fromhex(cfg["public"]),
        secret_x25519=secret,
        handlers={},
        authorize=authorize,
    )
    port = await links.start("127.0.0.1", 0)
    pool = PeelPool(Peeler.from_x25519_secret(secret), workers=int(cfg.get("workers", 1)))
    router = OnionRouter(pool, view, links, rpc=None)
    links.direct[KIND_ONION] = router.serve_link_now  # as the node daemon wires it
    print(json.dumps({"port": port}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await links.close()


if __name__ == "__main__":
    prof = None
    if "--profile" in sys.argv:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    if "--no-uvloop" in sys.argv:
        asyncio.run(main())
    else:
        import uvloop

        uvloop.run(main())
    if prof is not None:
        prof.disable()
        prof.dump_stats(sys.argv[sys.argv.index("--profile") + 1])
