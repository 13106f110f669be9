"""A small HTTP/1.1 server and client on asyncio protocols with httptools' parser: the node's
sites and requests without aiohttp (see docs/performance.md, "A node's footprint")."""

#: Largest header block either side takes, in bytes: a response's head (the client), a
#: request's headers (the server), and a chunked body's trailers, which are header lines too,
#: after the last chunk (both). Past it the client raises ``HttpProtocolError`` and the server
#: answers 431 and closes. (A request head may also hold a target of up to the server's
#: ``MAX_TARGET``.)
MAX_HEAD = 64 * 1024
