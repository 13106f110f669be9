"""Attachment encryption benchmarks (issue 10): a 10 MB file.

* ``file-encrypt-10m`` / ``file-decrypt-10m``: ``ours`` = the core's streaming
  AttachmentEncryptor/Decryptor fed 64 KiB chunks (pad to the bucket, AES-256-CBC, HMAC-SHA256,
  SHA-256 digest); ``baseline`` = the same scheme over ``cryptography`` (OpenSSL) and hashlib/
  hmac, in the same chunks. ``extra_info["ratio"]`` = ours / baseline in this run (goal ≤ 1.2).
* ``file-memory-10m``: RSS growth of a fresh process that encrypts a 10 MB file to disk with
  :func:`session.attachments.encrypt_file`, and of one that decrypts it with
  :func:`~session.attachments.decrypt_file`, against the one-shot functions in the same run
  (goal: under 32 MB for the streaming pair, whatever the file's size).

Every benchmark checks its output against the other implementation (``extra_info["correct"]``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from session import _core, attachments

pytestmark = pytest.mark.skipif(
    not hasattr(_core, "AttachmentEncryptor"),
    reason="session/_core.abi3.so predates streaming attachments: rebuild it (maturin build)",
)

SIZE = 10_000_000
CHUNK = attachments.CHUNK
DATA = os.urandom(SIZE)
KEY = os.urandom(64)


def ours_encrypt() -> tuple[bytes, bytes]:
    enc = _core.AttachmentEncryptor(SIZE, KEY)
    parts = [enc.update(DATA[i : i + CHUNK]) for i in range(0, SIZE, CHUNK)]
    tail, digest = enc.finalize()
    parts.append(tail)
    return b"".join(parts), digest


def base_encrypt(iv: bytes) -> tuple[bytes, bytes]:
    enc = Cipher(algorithms.AES(KEY[:32]), modes.CBC(iv)).encryptor()
    mac = hmac.new(KEY[32:], iv, hashlib.sha256)
    sha = hashlib.sha256(iv)
    parts = [iv]
    for i in range(0, SIZE, CHUNK):
        ct = enc.update(DATA[i : i + CHUNK])
        mac.update(ct)
        sha.update(ct)
        parts.append(ct)
    zeros = attachments.padded_size(SIZE) - SIZE
    pad = 16 - (SIZE + zeros) % 16
    ct = enc.update(bytes(zeros) + bytes([pad]) * pad) + enc.finalize()
    mac.update(ct)
    sha.update(ct)
    tag = mac.digest()
    sha.update(tag)
    parts += [ct, tag]
    return b"".join(parts), sha.digest()


def ours_decrypt(blob: bytes, digest: bytes) -> bytes:
    dec = _core.AttachmentDecryptor(KEY, digest, SIZE)
    parts = [dec.update(blob[i : i + CHUNK]) for i in range(0, len(blob), CHUNK)]
    parts.append(dec.finalize())
    return b"".join(parts)


def base_decrypt(blob: bytes, digest: bytes) -> bytes:
    body, tag = blob[:-32], blob[-32:]
    mac = hmac.new(KEY[32:], body[:16], hashlib.sha256)
    sha = hashlib.sha256()
    dec = Cipher(algorithms.AES(KEY[:32]), modes.CBC(body[:16])).decryptor()
    parts = []
    for i in range(16, len(body), CHUNK):
        ct = body[i : i + CHUNK]
        mac.update(ct)
        parts.append(dec.update(ct))
    parts.append(dec.finalize())
    sha.update(blob)
    if not hmac.compare_digest(mac.digest(), tag) or sha.digest() != digest:
        raise ValueError("bad MAC or digest")
    plain = b"".join(parts)
    return plain[: len(plain) - plain[-1]][:SIZE]


def best_of(fn: Callable[[], Any], rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def test_bench_file_encrypt(benchmark: Any) -> None:
    benchmark.group = "file-encrypt-10m"
    blob, digest = benchmark.pedantic(ours_encrypt, rounds=3, iterations=1)
    ref, ref_digest = base_encrypt(blob[:16])
    ok = blob == ref and digest == ref_digest
    benchmark.extra_info["correct"] = ok
    assert ok
    ours = best_of(ours_encrypt)
    base = best_of(lambda: base_encrypt(blob[:16]))
    benchmark.extra_info.update(ours_s=ours, baseline_s=base, ratio=ours / base)


def test_bench_file_decrypt(benchmark: Any) -> None:
    benchmark.group = "file-decrypt-10m"
    blob, digest = ours_encrypt()
    plain = benchmark.pedantic(lambda: ours_decrypt(blob, digest), rounds=3, iterations=1)
    ok = plain == DATA == base_decrypt(blob, digest)
    benchmark.extra_info["correct"] = ok
    assert ok
    ours = best_of(lambda: ours_decrypt(blob, digest))
    base = best_of(lambda: base_decrypt(blob, digest))
    benchmark.extra_info.update(ours_s=ours, baseline_s=base, ratio=ours / base)


CHILD = r"""
import json, sys
from session import attachments
mode, src, dst, meta = sys.argv[1:5]
def rss():  # peak RSS of this process image (ru_maxrss would carry the parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
before = rss()
if mode == "stream-encrypt":
    with open(dst, "wb") as out:
        s = attachments.encrypt_file(src, out)
    json.dump({"key": s.key.hex(), "digest": s.digest.hex(), "size": s.size}, open(meta, "w"))
elif mode == "stream-decrypt":
    m = json.load(open(meta))
    attachments.decrypt_file(src, dst, bytes.fromhex(m["key"]), bytes.fromhex(m["digest"]),
                             m["size"])
elif mode == "oneshot-encrypt":
    blob, key, digest = attachments.encrypt(open(src, "rb").read())
    open(dst, "wb").write(blob)
    json.dump({"key": key.hex(), "digest": digest.hex(), "size": 10_000_000}, open(meta, "w"))
else:
    m = json.load(open(meta))
    plain = attachments.decrypt(open(src, "rb").read(), bytes.fromhex(m["key"]),
                                bytes.fromhex(m["digest"]), m["size"])
    open(dst, "wb").write(plain)
print(rss() - before)
"""


def _growth(mode: str, src: Path, dst: Path, meta: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(src), str(dst), str(meta)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


def test_bench_file_memory(benchmark: Any, tmp_path: Path) -> None:
    benchmark.group = "file-memory-10m"
    src = tmp_path / "file.bin"
    src.write_bytes(DATA)
    growth: dict[str, int] = {}

    def run() -> None:
        for kind in ("stream", "oneshot"):
            blob, out, meta = tmp_path / f"{kind}.blob", tmp_path / f"{kind}.out", tmp_path / kind
            out.unlink(missing_ok=True)
            growth[f"{kind}_encrypt"] = _growth(f"{kind}-encrypt", src, blob, meta)
            growth[f"{kind}_decrypt"] = _growth(f"{kind}-decrypt", blob, out, meta)

    benchmark.pedantic(run, rounds=1, iterations=1)
    same = all((tmp_path / f"{k}.out").read_bytes() == DATA for k in ("stream", "oneshot"))
    meta = json.loads((tmp_path / "stream").read_text())
    ok = same and meta["size"] == SIZE
    mb = {k: round(v / 1e6, 1) for k, v in growth.items()}
    benchmark.extra_info.update(correct=ok, rss_growth_mb=mb, goal_mb=32)
    assert ok
    assert growth["stream_encrypt"] < 32e6 and growth["stream_decrypt"] < 32e6, mb


@pytest.fixture(autouse=True)
def _report(benchmark: Any) -> Any:
    yield
    print(benchmark.group, json.dumps(benchmark.extra_info))
