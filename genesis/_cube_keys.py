"""The default `cube_pub_keys` parameter: the RSA keys of the CyberMiles Cube wallet batches.

Copied from the reference fixture (and Travis's defaults); delegations signed by a Cube wallet are
verified against the key of their `cube_batch` (SPEC §6).
"""

from __future__ import annotations

import json

# (cube_batch, PEM public key)
_KEYS: tuple[tuple[str, str], ...] = (
    (
        "01",
        "-----BEGIN PUBLIC KEY-----\n"
        "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCiWpvDnwYFTqgSWPlA3VO8u+Yv\n"
        "9r8QGlRaYZFszUZEXUQxquGlFexMSVyFeqYjIokfPOEHHx2voqWgi3FKKlp6dkxw\n"
        "ApP3T22y7Epqvtr+EfNybRta15snccZy47dY4UcmYxbGWFTaL66tz22pCAbjFrxY\n"
        "3IxaPPIjDX+FiXdJWwIDAQAB\n"
        "-----END PUBLIC KEY-----",
    ),
    (
        "02",
        "-----BEGIN PUBLIC KEY-----\n"
        "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDQ8FL6/9zul+X7bFSRiWAzFiAE\n"
        "9vHYbClEHwlC7zUZ/JWzU7UT5S2qnYsseYF2WFjJtrGwHRAlTUyPtCpxV8f1uJsI\n"
        "l+/N9l6torUHwkhhib1catUSd/T72ltjvVyyg5LQjtRsskFnv3wM/yxYotrgnOs+\n"
        "dRpU6WI5XPCIyZqsGwIDAQAB\n"
        "-----END PUBLIC KEY-----",
    ),
    (
        "05",
        "-----BEGIN PUBLIC KEY-----\n"
        "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCZ7Fw+1ddvy5OPFftbea0MxewW\n"
        "KUTb/E7B4/MHvLz2h7f7snyveFwxxj7QwxaCoVxobEq6AigIlUFUXLM8Y598/jts\n"
        "TaN+jh4xdoQN7qKwrbz1MWGf58Aa78Vnoj54B7V0LSajVbLJSZNUEI/24HLcG2iN\n"
        "TD3dSvH0ARvRJJ9hZQIDAQAB\n"
        "-----END PUBLIC KEY-----",
    ),
    (
        "06",
        "-----BEGIN PUBLIC KEY-----\n"
        "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCbNyWzuQ8Vrgrf9no9woaqgifc\n"
        "jxfpvpuREoGNBOzOMl9BpyTa45t2ZeigE+xLaTZJc7dVTMQus8ik1b2qQcmrdViR\n"
        "bFx2P7tPg5z0DlDVXjq2G8Q3mP0WBEhGzyfycUmaT+yXoLu/UzGfFhr5nVztkUVD\n"
        "oOHnTtsKCKQekuY3YwIDAQAB\n"
        "-----END PUBLIC KEY-----",
    ),
)

# Compact JSON, byte-identical to the string Travis ships as its default.
DEFAULT_CUBE_PUB_KEYS: str = json.dumps(
    [{"cube_batch": batch, "pub_key": pem} for batch, pem in _KEYS], separators=(",", ":")
)
