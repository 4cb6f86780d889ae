"""Dev chain control (devnets only): mining, time travel, snapshots, reset, as Hardhat and anvil.

`DevChainApi(backend)` parses and checks the params (-32602 naming the field, nothing changed)
and drives a `DevChainBackend` (cybermiles_node/application/dev_chain.py on a one-node automine
devnet). `install_dev_chain` registers every method through `install_devnet_only`: elsewhere each
answers "method not available"; on a devnet whose blocks BFT consensus decides (several
validators) there is no backend and each answers -32004 saying so.

| method                                   | params                    | result                    |
|------------------------------------------|---------------------------|---------------------------|
| evm_mine                                 | [timestamp] or            | "0x0"                     |
|                                          | [{timestamp, blocks}]     |                           |
| anvil_mine, hardhat_mine                 | [count=1, interval=1]     | null / true               |
| evm_snapshot                             | []                        | id: "0x1", "0x2", ...     |
| evm_revert                               | [id]                      | true; false if unknown    |
| evm_increaseTime                         | [seconds]                 | total offset (number)     |
| evm_setNextBlockTimestamp                | [timestamp]               | null                      |
| evm_setAutomine, anvil_setAutomine       | [bool]                    | true / null               |
| hardhat_getAutomine, anvil_getAutomine   | []                        | bool                      |
| evm_setIntervalMining                    | [milliseconds; 0 = off]   | true                      |
| anvil_setIntervalMining                  | [seconds; 0 = off]        | null                      |
| evm_setBlockGasLimit                     | [gas]                     | true                      |
| anvil_dropTransaction                    | [hash]                    | the hash, or null         |
| hardhat_dropTransaction                  | [hash]                    | bool                      |
| anvil_reset, hardhat_reset               | [] or [{}] (no forking)   | null / true               |

Numbers are hex quantities or JSON integers (clients send both). Timestamps are unix seconds and
must come after the latest block's (as Hardhat refuses an earlier or equal one). `mine` builds
real blocks, at most `MAX_MINED_BLOCKS` per call; the first block gets the clock's timestamp and
each next one `interval` seconds after the one before (Hardhat's rule for both namespaces).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

from rpc.devnet_only import install_devnet_only
from rpc.errors import InvalidParams, MethodNotSupported
from rpc.params import bool_param, hash32, hex_data, hex_quantity, json_object, quantity

__all__ = [
    "CLIENT_VERSION_PREFIXES",
    "DevChainApi",
    "DevChainBackend",
    "compat_client_version",
    "install_dev_chain",
]

MAX_TIMESTAMP: Final = 2**64 - 1  # a header's timestamp is a uint64 for every client
MAX_MINED_BLOCKS: Final = 10_000  # ~35 s of real blocks; Hardhat's default HTTP timeout is 20 s
MIN_BLOCK_GAS_LIMIT: Final = 21_000  # a block must hold a plain transfer
MAX_BLOCK_GAS_LIMIT: Final = 2**63 - 1  # geth's bound
MAX_INTERVAL_S: Final = 365 * 24 * 3600  # interval mining slower than a block a year is a typo


# What web3_clientVersion starts with in each compatibility mode (config: "off" keeps ours):
# tools check these prefixes (hardhat-network-helpers accepts "hardhatnetwork", "anvil",
# "zksync"; its releases before 1.0.9 only the first).
CLIENT_VERSION_PREFIXES: Final[Mapping[str, str]] = {"anvil": "anvil", "hardhat": "HardhatNetwork"}


def compat_client_version(compat: str, ours: str) -> str:
    """web3_clientVersion for a devnet posing as `compat` ("off": `ours` unchanged): the
    expected prefix, then who we really are."""
    prefix = CLIENT_VERSION_PREFIXES.get(compat)
    if prefix is None:
        return ours
    return f"{prefix}/{ours} (cybermiles devnet in {compat} compatibility)"


class DevChainBackend(Protocol):
    """What the dev methods drive (cybermiles_node.application.dev_chain.DevChain)."""

    @property
    def head_timestamp(self) -> int: ...
    @property
    def automine(self) -> bool: ...
    def clock_time(self) -> int: ...
    async def mine(
        self, count: int, *, interval: int | None = None, timestamp: int | None = None
    ) -> None: ...
    async def increase_time(self, seconds: int) -> int: ...
    async def set_next_block_timestamp(self, timestamp: int) -> None: ...
    async def set_automine(self, on: bool) -> None: ...
    async def set_interval_mining(self, seconds: float) -> None: ...
    async def set_block_gas_limit(self, gas: int) -> None: ...
    def drop_transaction(self, tx_hash: bytes) -> bool: ...
    async def snapshot(self) -> int: ...
    async def revert(self, snapshot_id: int) -> bool: ...
    async def reset(self) -> None: ...


def number(v: object, name: str) -> int:
    """A non-negative integer given as a hex quantity or a JSON integer."""
    if type(v) is int:
        if v < 0:
            raise InvalidParams(f"invalid {name}: must not be negative, got {v}")
        return v
    if type(v) is str:
        return quantity(v, name)
    raise InvalidParams(
        f"invalid {name}: expected a hex quantity or an integer, got {type(v).__name__}"
    )


def bounded(v: object, name: str, low: int, high: int) -> int:
    n = number(v, name)
    if not low <= n <= high:
        raise InvalidParams(f"invalid {name}: must be from {low} to {high}, got {n}")
    return n


class DevChainApi:
    def __init__(self, backend: DevChainBackend) -> None:
        self.backend = backend

    # RPC name -> handler attribute (aliases share the work, not always the result shape).
    HANDLERS: Final[Mapping[str, str]] = {
        "evm_mine": "evm_mine",
        "anvil_mine": "anvil_mine",
        "hardhat_mine": "hardhat_mine",
        "evm_snapshot": "evm_snapshot",
        "evm_revert": "evm_revert",
        "evm_increaseTime": "evm_increaseTime",
        "evm_setNextBlockTimestamp": "evm_setNextBlockTimestamp",
        "evm_setAutomine": "evm_setAutomine",
        "anvil_setAutomine": "anvil_setAutomine",
        "hardhat_getAutomine": "get_automine",
        "anvil_getAutomine": "get_automine",
        "evm_setIntervalMining": "evm_setIntervalMining",
        "anvil_setIntervalMining": "anvil_setIntervalMining",
        "evm_setBlockGasLimit": "evm_setBlockGasLimit",
        "anvil_dropTransaction": "anvil_dropTransaction",
        "hardhat_dropTransaction": "hardhat_dropTransaction",
        "anvil_reset": "anvil_reset",
        "hardhat_reset": "hardhat_reset",
    }

    def methods(self) -> dict[str, Callable[..., Any]]:
        return {name: getattr(self, attr) for name, attr in sorted(self.HANDLERS.items())}

    # -- mining -------------------------------------------------------------------------------
    def _future_timestamp(self, v: object, name: str) -> int:
        timestamp = bounded(v, name, 0, MAX_TIMESTAMP)
        latest = self.backend.head_timestamp
        if timestamp <= latest:
            raise InvalidParams(
                f"invalid {name}: {timestamp} is not after the latest block's timestamp {latest}"
            )
        return timestamp

    async def evm_mine(self, arg: object = None) -> str:
        count, timestamp = 1, None
        if isinstance(arg, dict):
            options = json_object(arg, "options")
            unknown = sorted(set(options) - {"timestamp", "blocks"})
            if unknown:
                raise InvalidParams(f"invalid options.{unknown[0]}: unknown field")
            count = _count(options.get("blocks", 1), "options.blocks")
            if options.get("timestamp") is not None:
                timestamp = self._future_timestamp(options["timestamp"], "options.timestamp")
        elif arg is not None:
            timestamp = self._future_timestamp(arg, "timestamp")
        await self.backend.mine(count, timestamp=timestamp)
        return "0x0"

    async def _mine(self, count: object, interval: object) -> None:
        blocks = _count(1 if count is None else count, "count")
        seconds = bounded(1 if interval is None else interval, "interval", 0, MAX_TIMESTAMP)
        if blocks and self.backend.clock_time() + (blocks - 1) * seconds > MAX_TIMESTAMP:
            raise InvalidParams("invalid interval: the last block's timestamp would pass 2^64-1")
        await self.backend.mine(blocks, interval=seconds)

    async def anvil_mine(self, count: object = None, interval: object = None) -> None:
        await self._mine(count, interval)

    async def hardhat_mine(self, count: object = None, interval: object = None) -> bool:
        await self._mine(count, interval)
        return True

    # -- snapshots ----------------------------------------------------------------------------
    async def evm_snapshot(self) -> str:
        return hex_quantity(await self.backend.snapshot())

    async def evm_revert(self, snapshot_id: object) -> bool:
        return await self.backend.revert(number(snapshot_id, "snapshotId"))

    async def _reset(self, options: object) -> None:
        if options is not None:
            given = json_object(options, "options")
            if "forking" in given:
                raise InvalidParams(
                    "invalid options.forking: a cybermiles devnet cannot fork another chain; "
                    "reset takes no options"
                )
            if given:
                raise InvalidParams(f"invalid options.{sorted(given)[0]}: unknown field")
        await self.backend.reset()

    async def anvil_reset(self, options: object = None) -> None:
        await self._reset(options)

    async def hardhat_reset(self, options: object = None) -> bool:
        await self._reset(options)
        return True

    # -- time ---------------------------------------------------------------------------------
    async def evm_increaseTime(self, seconds: object) -> int:
        amount = bounded(seconds, "seconds", 0, MAX_TIMESTAMP)
        if self.backend.clock_time() + amount > MAX_TIMESTAMP:
            raise InvalidParams("invalid seconds: the clock would pass 2^64-1")
        return await self.backend.increase_time(amount)

    async def evm_setNextBlockTimestamp(self, timestamp: object) -> None:
        await self.backend.set_next_block_timestamp(
            self._future_timestamp(timestamp, "timestamp")
        )

    # -- mining mode --------------------------------------------------------------------------
    async def evm_setAutomine(self, on: object) -> bool:
        await self.backend.set_automine(bool_param(on, "enabled"))
        return True

    async def anvil_setAutomine(self, on: object) -> None:
        await self.evm_setAutomine(on)

    def get_automine(self) -> bool:
        return self.backend.automine

    async def evm_setIntervalMining(self, milliseconds: object) -> bool:
        if isinstance(milliseconds, list):
            raise InvalidParams(
                "invalid interval: a [min, max] range is not supported, give milliseconds"
            )
        ms = bounded(milliseconds, "interval", 0, MAX_INTERVAL_S * 1000)
        await self.backend.set_interval_mining(ms / 1000)
        return True

    async def anvil_setIntervalMining(self, seconds: object) -> None:
        await self.backend.set_interval_mining(bounded(seconds, "interval", 0, MAX_INTERVAL_S))

    async def evm_setBlockGasLimit(self, gas: object) -> bool:
        limit = bounded(gas, "gasLimit", MIN_BLOCK_GAS_LIMIT, MAX_BLOCK_GAS_LIMIT)
        await self.backend.set_block_gas_limit(limit)
        return True

    # -- the pool -----------------------------------------------------------------------------
    def anvil_dropTransaction(self, tx_hash: object) -> str | None:
        raw = hash32(tx_hash, "transactionHash")
        return hex_data(raw) if self.backend.drop_transaction(raw) else None

    def hardhat_dropTransaction(self, tx_hash: object) -> bool:
        return self.backend.drop_transaction(hash32(tx_hash, "transactionHash"))


def _count(v: object, name: str) -> int:
    return bounded(v, name, 0, MAX_MINED_BLOCKS)


def _bft_devnet(name: str) -> Callable[..., Awaitable[None]]:
    async def refuse(*_params: object) -> None:
        raise MethodNotSupported(
            f"{name} is served by one-node devnets only: the blocks of this devnet are "
            "decided by BFT consensus among its validators"
        )

    return refuse


def install_dev_chain(dispatcher: Any, backend: DevChainBackend | None, *, enabled: bool) -> None:
    """Register the dev chain methods: served with `backend`, refused on a devnet without
    one (BFT), "not available" when not `enabled` (not a devnet)."""
    handlers: Mapping[str, Callable[..., Any]]
    if backend is None:
        handlers = {name: _bft_devnet(name) for name in DevChainApi.HANDLERS}
    else:
        handlers = DevChainApi(backend).methods()
    install_devnet_only(dispatcher, handlers, enabled=enabled)
