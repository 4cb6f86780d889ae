"""Network presets and the one-command devnet genesis.

- `PRESET_CHAIN_IDS`: the EIP-155 chain id of each named network (SPEC §1).
- `DEV_MNEMONIC` / `dev_accounts(n)`: the Hardhat/Foundry default accounts
  (m/44'/60'/0'/0/i of "test … junk"), so their default keys work against a devnet unchanged.
- `preset_accounts(n)`: m/44'/60'/1'/0/i of the same mnemonic, the generated keystore accounts
  of the Travis-compatibility devnet preset (cybermiles_node/operator/travis_preset.py).
- `TRAVIS_DEV_ADDRESSES`: the two accounts Travis devnets prefunded, for old scripts.
- `devnet_genesis(...)`: a valid `Genesis` that prefunds those accounts and makes dev account i
  (or the i-th of the `owners` given) the owner of validator i, with the parameters of its
  network changed by `params`.
- `parse_param_overrides(["NAME=VALUE", ...])`: the devnet's `--param` options as typed values,
  each checked by `genesis.params.parse_param` (a bad one is a `ParamError` naming it).

Dev accounts' private keys are public knowledge: they exist for local chains only and must never
hold value on a real network.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType

from genesis.errors import GenesisError, ParamError
from genesis.hdkeys import address_of, key_at, seed_from_mnemonic
from genesis.params import (
    PARAM_SPEC_BY_NAME,
    Params,
    ParamValue,
    default_params,
    parse_param,
)
from genesis.schema import (
    PUBLIC_CHAIN_IDS,
    AllocAccount,
    ConsensusTimeouts,
    EvmProfile,
    Genesis,
    GenesisValidator,
)

PRESET_CHAIN_IDS: Mapping[str, int] = MappingProxyType(
    {**PUBLIC_CHAIN_IDS, "private": 1234, "devnet": 1234}
)
DEVNET_CHAIN_ID = 1234

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_PATH_PREFIX = "m/44'/60'/0'/0/"
PRESET_PATH_PREFIX = "m/44'/60'/1'/0/"

TRAVIS_DEV_ADDRESSES: tuple[bytes, ...] = (
    bytes.fromhex("7eff122b94897ea5b0e2a9abf47b86337fafebdc"),
    bytes.fromhex("77beb894fc9b0ed41231e51f128a347043960a9d"),
)

DEVNET_BALANCE = 10**6 * 10**18  # 1 million CMT per prefunded account
DEVNET_GAS_LIMIT = 30_000_000
DEVNET_VALIDATOR_SHARES = 10_000  # CMT; >= min_staking_amount, = max_amount × self_staking_ratio
DEVNET_VALIDATOR_MAX_AMOUNT = 100_000  # CMT
DEVNET_VALIDATOR_COMP_RATE = Fraction(1, 2)


@dataclass(frozen=True)
class DevAccount:
    address: bytes  # 20 bytes
    private_key: bytes  # 32 bytes, secp256k1

    def __repr__(self) -> str:  # keep keys out of logs even though they are public test keys
        return f"DevAccount(address=0x{self.address.hex()})"


_caches: dict[str, list[DevAccount]] = {}
_cache_lock = threading.Lock()
_seed: bytes | None = None


def dev_accounts(n: int) -> list[DevAccount]:
    """The first `n` accounts of DEV_MNEMONIC at m/44'/60'/0'/0/i (cached across calls)."""
    return _derived(DEV_PATH_PREFIX, n)


def preset_accounts(n: int) -> list[DevAccount]:
    """The first `n` accounts of DEV_MNEMONIC at m/44'/60'/1'/0/i: the keystore accounts of
    the Travis-compatibility devnet preset (BIP-44 account 1, so never one of `dev_accounts`)."""
    return _derived(PRESET_PATH_PREFIX, n)


def _derived(prefix: str, n: int) -> list[DevAccount]:
    """The first `n` keys of DEV_MNEMONIC at `prefix` + i (cached across calls).

    The BIP-39 seed (2048 PBKDF2 rounds) is computed once and each index derived from it; this is
    what eth-account's `Account.from_mnemonic` does per call, without repeating the seed
    stretching (genesis/hdkeys.py, which does not import eth-account).
    """
    global _seed
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    with _cache_lock:
        cache = _caches.setdefault(prefix, [])
        if len(cache) < n:
            if _seed is None:
                _seed = seed_from_mnemonic(DEV_MNEMONIC, passphrase="")
            for index in range(len(cache), n):
                key = key_at(_seed, f"{prefix}{index}")
                cache.append(DevAccount(address=address_of(key), private_key=key))
        return cache[:n]


def devnet_genesis(
    *,
    validator_pub_keys: Sequence[bytes],
    genesis_time: int,
    chain_id: int = DEVNET_CHAIN_ID,
    accounts: int = 10,
    balance: int = DEVNET_BALANCE,
    evm_profile: EvmProfile = "cvm",
    gas_limit: int = DEVNET_GAS_LIMIT,
    network: str = "devnet",
    params: Mapping[str, ParamValue] | None = None,
    owners: Sequence[bytes] | None = None,
    extra_alloc: Mapping[bytes, int] | None = None,
    timeouts: ConsensusTimeouts | None = None,
) -> Genesis:
    """A devnet genesis: `accounts` mnemonic accounts and the Travis dev accounts hold `balance`
    wei each; validator i (key `validator_pub_keys[i]`) is owned by dev account i, or by
    `owners[i]` when given, and self-delegates 10,000 CMT of it. `extra_alloc` funds more
    accounts (address -> wei; it also replaces a balance above). Parameters are the defaults of
    `network` with `params` (typed values, see `parse_param_overrides`) in their place;
    `timeouts` are the consensus timeouts (the defaults when None)."""
    mnemonic = [account.address for account in dev_accounts(accounts)]
    owner_addresses = list(mnemonic if owners is None else owners)
    if len(validator_pub_keys) > len(owner_addresses):
        raise GenesisError(
            "validators",
            f"{len(validator_pub_keys)} validators need as many accounts to own them, "
            f"but only {len(owner_addresses)} are given",
        )
    alloc = {address: AllocAccount(balance=balance) for address in mnemonic}
    for address in TRAVIS_DEV_ADDRESSES:
        alloc[address] = AllocAccount(balance=balance)
    for address, wei in (extra_alloc or {}).items():
        alloc[address] = AllocAccount(balance=wei)
    validators = tuple(
        GenesisValidator(
            pub_key=bytes(pub_key),
            owner=owner_addresses[index],
            shares=DEVNET_VALIDATOR_SHARES,
            max_amount=DEVNET_VALIDATOR_MAX_AMOUNT,
            comp_rate=DEVNET_VALIDATOR_COMP_RATE,
            name=f"validator-{index}",
        )
        for index, pub_key in enumerate(validator_pub_keys)
    )
    return Genesis(
        chain_id=chain_id,
        network=network,
        genesis_time=genesis_time,
        alloc=tuple(sorted(alloc.items())),
        validators=validators,
        evm_profile=evm_profile,
        gas_limit=gas_limit,
        timeouts=timeouts or ConsensusTimeouts(),
        params=devnet_params(network, params or {}),
    )


def devnet_params(network: str, overrides: Mapping[str, ParamValue]) -> Params:
    """`network`'s default parameters with `overrides` (typed values) in their place; Params
    checks every value's type and range on construction."""
    for name in overrides:
        if name not in PARAM_SPEC_BY_NAME:
            raise ParamError(name, "unknown parameter")
    return dataclasses.replace(default_params(network), **overrides)  # type: ignore[arg-type]


def parse_param_overrides(assignments: Sequence[str]) -> dict[str, ParamValue]:
    """`NAME=VALUE` strings (a devnet's `--param` options) as {name: typed value}, in order.

    Values are read as genesis and governance read them (`parse_param`: "5", "1/10", "0.2",
    "true", "0x…"); an unknown name, a bad value or a name given twice is a ParamError naming
    the parameter.
    """
    parsed: dict[str, ParamValue] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        name = name.strip()
        if not equals or not name:
            raise GenesisError("params", f"expected NAME=VALUE, got {assignment!r}")
        if name in parsed:
            raise ParamError(name, "given more than once")
        parsed[name] = parse_param(name, value.strip())
    return parsed
