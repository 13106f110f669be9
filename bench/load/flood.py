"""A flooding client for the fairness benchmark: as many ``info`` requests as it can get
answered, ``--concurrency`` at a time, from one local address (``--from``), until stdin closes.

    python bench/load/flood.py https://127.0.0.1:PORT [--from 127.0.0.1] [--concurrency 16]

Prints ``{"limited": true}`` once the node has refused it (429) the first time, and at the end
``{"statuses": {"200": n, "429": m, ...}, "errors": k}``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys

import aiohttp


async def main(url: str, local: str, concurrency: int) -> None:
    body = json.dumps({"method": "info", "params": {}}).encode()
    statuses: collections.Counter[int] = collections.Counter()
    errors = 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    eof = loop.run_in_executor(None, sys.stdin.read)  # the parent closes stdin to stop us
    eof.add_done_callback(lambda _: stop.set())
    connector = aiohttp.TCPConnector(ssl=False, limit=concurrency, local_addr=(local, 0))
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal errors
            while not stop.is_set():
                try:
                    async with http.post(url + "/storage_rpc/v1", data=body) as r:
                        await r.read()
                        statuses[r.status] += 1
                        if r.status == 429 and statuses[429] == 1:
                            print(json.dumps({"limited": True}), flush=True)
                except aiohttp.ClientError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    print(
        json.dumps({"statuses": {str(k): v for k, v in statuses.items()}, "errors": errors}),
        flush=True,
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--from", dest="local", default="127.0.0.1")
    ap.add_argument("--concurrency", type=int, default=16)
    a = ap.parse_args()
    asyncio.run(main(a.url, a.local, a.concurrency))
