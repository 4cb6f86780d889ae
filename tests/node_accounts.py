"""The node's accounts as the unit tests use them: a real `NodeAccounts` over an empty keystore
in a temporary folder, with the given keys as always-unlocked devnet accounts (node.py's
`node_accounts` for a devnet)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from cybermiles_node.accounts.backend import NodeAccounts
from cybermiles_node.accounts.keystore import Keystore
from cybermiles_node.accounts.unlock import Unlocker
from genesis import DevAccount


def devnet_accounts(keys: Iterable[DevAccount], keystore: Path | None = None) -> NodeAccounts:
    """`keys` unlocked; the keystore folder is `keystore`, or a fresh temporary one."""
    folder = keystore if keystore is not None else Path(tempfile.mkdtemp(prefix="keystore-"))
    store = Keystore(folder)
    return NodeAccounts(
        store, Unlocker(store, time.monotonic), {k.address: k.private_key for k in keys}
    )
