import os

os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
