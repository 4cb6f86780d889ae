"""genesis/hdkeys.py derives what eth-account derives (the reference), for the devnet paths and
for another mnemonic and passphrase; bad paths are refused."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.hdaccount import key_from_seed
from eth_account.hdaccount import seed_from_mnemonic as reference_seed

from genesis.hdkeys import address_of, key_at, seed_from_mnemonic
from genesis.presets import DEV_MNEMONIC

OTHER = "legal winner thank year wave sausage worth useful legal winner thank yellow"


@pytest.mark.parametrize(("mnemonic", "passphrase"), [(DEV_MNEMONIC, ""), (OTHER, "TREZOR")])
def test_seed_and_keys_match_eth_account(mnemonic: str, passphrase: str) -> None:
    seed = seed_from_mnemonic(mnemonic, passphrase)
    assert seed == reference_seed(mnemonic, passphrase)
    for path in ("m/44'/60'/0'/0/0", "m/44'/60'/0'/0/7", "m/44'/60'/1'/0/3", "m/0/1'/2"):
        key = key_at(seed, path)
        assert key == key_from_seed(seed, path), path
        assert address_of(key) == bytes.fromhex(Account.from_key(key).address[2:])


def test_the_first_devnet_account_is_hardhats() -> None:
    key = key_at(seed_from_mnemonic(DEV_MNEMONIC), "m/44'/60'/0'/0/0")
    assert address_of(key).hex() == "f39fd6e51aad88f6f4ce6ab8827279cfffb92266"


@pytest.mark.parametrize("path", ["44'/60'", "m/x", f"m/{2**31}", "m/-1"])
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        key_at(b"\x00" * 64, path)
