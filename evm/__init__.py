"""py-evm integration: profiles, state database, executor, tries, database adapters.

Importing this package selects eth-hash's safe-pysha3 backend (about 3x faster keccak than the
pycryptodome backend eth-hash would otherwise pick), unless ETH_HASH_BACKEND says otherwise.
"""

import os

os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
