"""A small HTTP/1.1 server and client on asyncio protocols with httptools' parser: the node's
sites and requests without aiohttp (see docs/performance.md, "A node's footprint")."""
