"""The CyberMiles low-price and free-transaction rules (SPEC §4), as pure functions.

A transaction is *low-price* when the price it pays per gas in the block, min(fee cap, base fee
+ priority fee), is below the `gas_price` chain parameter. Under the `cvm` profile the base fee
is `gas_price` itself, so a transaction is low-price exactly when its fee cap is below
`gas_price`; under `lity` the base fee is 0 (DECISIONS "Fees for default clients"). Low-price
transactions are allowed, and at price 0 they run free, within three limits per block:
1. one low-price transaction per (sender, recipient) pair (a creation's recipient is the zero
   address) — otherwise 101 "The gas price is too low for transaction";
2. a gas limit of at most `low_price_tx_gas_limit` — otherwise 102 "The gas limit is too high
   for low price transaction", except the freegas shape (price 0, gas above the limit, a call
   with data: the called contract pays, see `is_freegas`);
3. at most `low_price_tx_slots_cap` low-price transactions — otherwise 103 "The capacity of one
   block is reached for low price transactions".

`LowPriceSlots` is the per-block bookkeeping: the application keeps one for the next block
(held by executable pool transactions only: a queued one takes its slot when it becomes
executable, application/app.py), block building and validation keep one per block. The same
checks run in all three places, so a block a validator builds is one every other validator
accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cybermiles_node.errors import TxRejected
from evm.executor import FreegasTerms
from evm.transactions import SignedTx
from genesis.params import Params

ZERO_ADDRESS = b"\x00" * 20


class LowPriceRejected(TxRejected):
    """A low-price transaction broke one of the per-block rules (Travis codes 101-103)."""

    travis_code = 0
    travis_text = ""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.travis_text} ({self.travis_code}): {detail}")


class PriceTooLow(LowPriceRejected):
    code = 101
    travis_code = 101
    travis_text = "The gas price is too low for transaction"


class GasTooHighForLowPrice(LowPriceRejected):
    code = 102
    travis_code = 102
    travis_text = "The gas limit is too high for low price transaction"


class LowPriceCapacityReached(LowPriceRejected):
    code = 103
    travis_code = 103
    travis_text = "The capacity of one block is reached for low price transactions"


@dataclass(frozen=True)
class FeeRules:
    gas_price: int
    low_price_gas_limit: int
    low_price_slots: int
    base_fee: int = 0  # the block's (its header's baseFeePerGas)

    @classmethod
    def of(cls, params: Params, base_fee: int = 0) -> FeeRules:
        return cls(
            params.gas_price,
            params.low_price_tx_gas_limit,
            params.low_price_tx_slots_cap,
            base_fee,
        )

    @property
    def freegas(self) -> FreegasTerms:
        return FreegasTerms(self.gas_price, self.low_price_gas_limit)

    def price(self, tx: SignedTx) -> int:
        """What `tx` pays per gas in the block."""
        return tx.price(self.base_fee)

    def is_low_price(self, tx: SignedTx) -> bool:
        # A system transaction's price 0 is part of its envelope; its handler charges it.
        return self.price(tx) < self.gas_price and not tx.is_system

    def is_freegas(self, tx: SignedTx) -> bool:
        """Price 0, gas above the low-price limit, a call with data: the contract pays."""
        return self.freegas.applies(tx, self.base_fee)

    def check_shape(self, tx: SignedTx) -> None:
        """Rule 2, which needs no state (raises GasTooHighForLowPrice)."""
        if not self.is_low_price(tx) or tx.gas <= self.low_price_gas_limit:
            return
        if self.is_freegas(tx):
            return
        raise GasTooHighForLowPrice(
            f"gas limit {tx.gas} above {self.low_price_gas_limit} at price {self.price(tx)} wei "
            f"(the minimum price is {self.gas_price} wei)"
        )


def pair_of(tx: SignedTx) -> tuple[bytes, bytes]:
    return tx.sender, tx.to or ZERO_ADDRESS


@dataclass
class LowPriceSlots:
    """The low-price transactions of one block (or of the mempool's next block)."""

    rules: FeeRules
    pairs: dict[tuple[bytes, bytes], bytes] = field(default_factory=dict)  # pair -> tx hash

    def check(self, tx: SignedTx, replacing: bytes | None = None) -> None:
        """Rules 1 and 3 for a low-price `tx` joining the block (raises, changes nothing);
        `replacing`: the hash of the transaction `tx` replaces, whose slot it may take."""
        if not self.rules.is_low_price(tx):
            return
        holder = self.pairs.get(pair_of(tx))
        if holder is not None and holder not in (tx.hash, replacing):
            raise PriceTooLow(
                "one low-price transaction per sender and recipient per block; "
                f"0x{holder.hex()} already holds it"
            )
        if holder is None and len(self.pairs) >= self.rules.low_price_slots:
            raise LowPriceCapacityReached(
                f"{self.rules.low_price_slots} low-price transactions already in this block"
            )

    def take(self, tx: SignedTx, replacing: bytes | None = None) -> None:
        """Check and, for a low-price tx, hold its slot."""
        self.check(tx, replacing)
        self.hold(tx)

    def holds(self, tx_hash: bytes) -> bool:
        return tx_hash in self.pairs.values()

    def hold(self, tx: SignedTx) -> None:
        """Hold the slot of a low-price tx already checked (no-op for a full-price one)."""
        if self.rules.is_low_price(tx):
            self.pairs[pair_of(tx)] = tx.hash

    def release(self, tx_hash: bytes) -> None:
        for pair, holder in sorted(self.pairs.items()):
            if holder == tx_hash:
                del self.pairs[pair]

    def release_missing(self, is_pending: Callable[[bytes], bool]) -> None:
        """Free the slots of transactions no longer pending (committed or evicted)."""
        for pair, tx_hash in sorted(self.pairs.items()):
            if not is_pending(tx_hash):
                del self.pairs[pair]
