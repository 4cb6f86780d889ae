"""CyberMiles node: composition root, chain application, mempool, CLI."""

import evm  # noqa: F401  (selects the fast keccak backend before anything hashes)
