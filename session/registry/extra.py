"""Whether the package's optional ``devnet`` extra (eth-tester, py-evm: a local chain in the
registry's process) is installed, asked without importing it: ``session-node devnet`` and
``session-node registry --devnet-chain`` check before they start anything, so an operator
without it gets one sentence saying what to install instead of an import traceback."""

from __future__ import annotations

import importlib.util

#: What a devnet chain needs besides the package (the ``devnet`` extra), as one sentence.
MISSING_DEVNET_EXTRA = (
    "a devnet runs a local chain, which needs the package's devnet extra: install "
    "'session-network[devnet]' (from a checkout: pip install '.[devnet]' or "
    "pipx install '.[devnet]')"
)


def devnet_chain_missing() -> str | None:
    """:data:`MISSING_DEVNET_EXTRA` when a devnet chain cannot run here (eth-tester is not
    installed), else None: checked before anything starts, so the operator gets the sentence,
    not an import traceback from the registry's process."""
    return MISSING_DEVNET_EXTRA if importlib.util.find_spec("eth_tester") is None else None
