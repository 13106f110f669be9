"""A child process that ends when the process that started it dies.

``python -P -m session.service.lifeline FD MODULE [ARGS...]`` runs ``python -m MODULE ARGS...``
in this process (``runpy``: the same interpreter, the module as ``__main__``, ``sys.argv`` as
``python -m`` sets it), with one more daemon thread that blocks reading file descriptor ``FD``:
the read end of a pipe whose write end only the parent holds. Nothing is ever written to it, so
the read returns only when every write end is closed, which the kernel does when the parent
exits in any way (``SIGKILL``, a crash, a normal exit). The child then sends itself ``SIGTERM``
(its ordinary, graceful stop) and, if it is still running ``GRACE_SECONDS`` later, ``SIGKILL``.

Why a pipe and not Linux's ``prctl(PR_SET_PDEATHSIG)``: the death signal fires when the
*thread* that forked the child exits, not the process. The devnet's control server starts
nodes from short-lived request threads (``ThreadingHTTPServer``), so a node added through it
would be killed as soon as the request was answered. A pipe belongs to the process, works
wherever pipes do, and lets the child stop gracefully. What the parent must do
(:func:`lifeline_pipe`, :func:`lifeline_command`): keep the write end non-inheritable (as
``os.pipe`` makes it) so no sibling keeps it open, and pass the read end with ``pass_fds``. A
process forked by the parent *without* exec (``multiprocessing``'s fork start method) would
inherit the write end and keep the children alive while it runs.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading

#: Seconds between the SIGTERM a child sends itself when its parent is gone and its SIGKILL.
GRACE_SECONDS = 20.0


def lifeline_pipe() -> tuple[int, int]:
    """A new lifeline: ``(read_fd, write_fd)``, both non-inheritable. The parent keeps
    ``write_fd`` open for as long as its children should live, and passes ``read_fd`` to each
    child (``pass_fds``, and the number in :func:`lifeline_command`)."""
    return os.pipe()


def lifeline_command(read_fd: int, module: str, *args: str) -> list[str]:
    """The command line of ``python -m module args...`` that ends when the lifeline closes.

    ``-P``: the child imports the installed package, never a ``session/`` directory that
    happens to be its current directory (a checkout without the built extension)."""
    return [sys.executable, "-P", "-m", __name__, str(read_fd), module, *args]


def watch(fd: int, grace: float = GRACE_SECONDS) -> threading.Thread:
    """Start the daemon thread that stops this process once ``fd`` reads end-of-file."""

    def wait_for_parent() -> None:
        while os.read(fd, 1):
            pass  # nothing is written; a stray byte is ignored
        os.kill(os.getpid(), signal.SIGTERM)
        # still running after the grace period: a shutdown that hangs must not outlive it
        threading.Event().wait(grace)
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=wait_for_parent, name="lifeline", daemon=True)
    thread.start()
    return thread


def main(argv: list[str]) -> None:
    """``FD MODULE [ARGS...]``: watch ``FD``, then run ``MODULE`` as ``python -m`` would."""
    if len(argv) < 2 or not argv[0].isdigit():
        sys.exit(f"usage: python -m {__name__} FD MODULE [ARGS...]")
    fd, module = int(argv[0]), argv[1]
    try:
        os.fstat(fd)
    except OSError:
        sys.exit(f"{__name__}: file descriptor {fd} is not open (pass it with pass_fds)")
    watch(fd)
    sys.argv = [module, *argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
