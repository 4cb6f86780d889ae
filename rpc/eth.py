"""The eth_, net_ and web3_ methods, served from the chain application.

`EthApi` answers every method a single node can: blocks, transactions, receipts, state at any
stored block (the state trie keeps every root), calls and gas estimates, logs and polled
filters, raw transaction submission (a batch of eth_sendRawTransaction calls is admitted in one
go so sender recovery can be batched), fee helpers and proofs. `install` registers them on a
`Dispatcher`; `notify_commit` / `notify_pending` feed filters and subscriptions.

Block tags: with BFT finality every committed block is final, so "latest", "safe" and
"finalized" all name the head. "pending" names the head too, except for
eth_getTransactionCount, which counts the sender's executable mempool transactions. With
`pending_nonce_compat` (SPEC §8's switch, `rpc.pending_nonce_compat`) eth_getTransactionCount
answers that pending nonce whatever the block tag, as Travis did (its tag is still validated).

Fees (DECISIONS "Fees for default clients"): on a profile whose blocks carry a base fee (cvm)
it is the `gas_price` parameter, so eth_gasPrice answers gas_price, eth_maxPriorityFeePerGas 0
(clients' maxFee = 2 x base fee + tip then pays exactly the base fee) and eth_feeHistory the
blocks' base fees, the next block's, and rewards = price - base fee (never negative; a
low-price transaction gives 0). Under lity the base fee is 0 (blocks show "0x0"), so the tip
must carry the minimum: eth_maxPriorityFeePerGas answers gas_price and eth_feeHistory's rewards
are never below it (a suggested tip, as clients read it), so ethers (legacy at eth_gasPrice when
the base fee is 0), Hardhat, web3.py and cast (maxFee = 2 x 0 + tip) all pay gas_price.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

import trio
from eth.abc import BlockHeaderAPI
from eth_hash.auto import keccak

from evm.call import (
    AccessList,
    CallError,
    CallRequest,
    CallResult,
    EstimateFailed,
    ExecutionTimeout,
    create_access_list,
    estimate_gas,
    run_call,
)
from evm.errors import TxRejected
from evm.executor import BlockEnv
from evm.profiles import EvmProfile
from evm.transactions import SignedTx
from rpc import formatting as fmt
from rpc.budget import ResponseBudget, log_json_bytes, receipt_json_bytes, tx_json_bytes
from rpc.errors import ExecutionReverted, InvalidInput, InvalidParams, LimitExceeded
from rpc.execution import EvmWorker
from rpc.filters import FilterRegistry, LogFilter, bloom_may_match, log_matches, parse_log_filter
from rpc.params import (
    BlockRef,
    address,
    array,
    block_ref,
    bool_param,
    data,
    hash32,
    json_object,
    optional_address,
    optional_data,
    optional_quantity,
    quantity,
    storage_slot,
    to_checksum,
)
from rpc.session import Session, http_client
from rpc.subscriptions import SubscriptionHub

VERSION = "0.1.0"
_Executed = TypeVar("_Executed")  # what an EVM job answers (a CallResult, an estimate)
MAX_LOG_BLOCK_RANGE = 10_000
MAX_LOGS = 10_000
MAX_FEE_HISTORY = 1024
MAX_REWARD_PERCENTILES = 100  # geth's limit
MAX_PROOF_KEYS = 1024  # storage proofs per eth_getProof: each walks the storage trie
# Methods that take the caller's session (filters are owned by a WebSocket connection).
_FILTER_INSTALLERS = ("eth_newFilter", "eth_newBlockFilter", "eth_newPendingTransactionFilter")


class LocatedReceipt(Protocol):
    """One committed transaction with its receipt, and what its receipt JSON needs from the
    transactions before it (cybermiles_node.application.chain.LocatedReceipt)."""

    @property
    def header(self) -> BlockHeaderAPI: ...
    @property
    def index(self) -> int: ...
    @property
    def tx(self) -> fmt.ReceiptTx: ...
    @property
    def stored(self) -> Any: ...
    @property
    def gas_used(self) -> int: ...
    @property
    def first_log_index(self) -> int: ...


# Transactions of one eth_sendRawTransaction batch admitted between two looks at the event loop
# (~35 us each once their senders are known).
ADMISSION_CHUNK = 32
CHUNKS_PER_PIECE = 2  # chunks per message to the recovery workers


class ChainView(Protocol):
    """What the eth methods read from the chain (cybermiles_node.application.chain.Chain).
    One transaction or receipt is read on its own (`transaction`, `located_receipt`): its
    cost does not grow with its block."""

    chain_id: int
    gas_limit: int
    head: BlockHeaderAPI
    db: Any
    profile: Any

    def header_by_number(self, number: int) -> BlockHeaderAPI | None: ...
    def header_by_hash(self, block_hash: bytes) -> BlockHeaderAPI | None: ...
    def transactions(self, number: int) -> list[SignedTx]: ...
    def receipts(self, number: int) -> list[Any]: ...
    def transaction(self, number: int, index: int) -> SignedTx | None: ...
    def receipt_transactions(self, number: int) -> Sequence[fmt.ReceiptTx]: ...
    def receipt_transaction(self, number: int, index: int) -> fmt.ReceiptTx | None: ...
    def located_receipt(self, tx_hash: bytes) -> LocatedReceipt | None: ...
    def next_base_fee(self) -> int: ...
    def low_price_threshold(self, header: BlockHeaderAPI) -> int: ...
    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None: ...
    def state_at(self, header: BlockHeaderAPI | None = None) -> Any: ...
    def env_of(self, header: BlockHeaderAPI) -> BlockEnv: ...


class Backend(Protocol):
    """The application the methods drive (cybermiles_node.application.app.ChainApp)."""

    @property
    def chain(self) -> ChainView: ...
    @property
    def mempool(self) -> Any: ...
    @property
    def min_gas_price(self) -> int: ...

    def check_tx(self, raw: bytes) -> SignedTx: ...
    def ship_senders(
        self, raws: Sequence[bytes], piece: int
    ) -> list[Future[list[bytes | None]]]: ...
    def check_txs(
        self, raws: Sequence[bytes], senders: Sequence[bytes | None] | None = None
    ) -> list[SignedTx | TxRejected]: ...


async def _result_of(future: Future[list[bytes | None]]) -> list[bytes | None]:
    """The result of a sender-recovery future, waited for without blocking the event loop and
    without a thread of its own: the future's done-callback (in the executor's thread) wakes
    the loop. Every thread that must get the GIL back from one executing a block waits up to a
    switch interval, so fewer thread hops is lower latency."""
    done = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def wake(_: object) -> None:
        try:
            token.run_sync_soon(done.set)
        except trio.RunFinishedError:  # the node stopped meanwhile
            pass

    future.add_done_callback(wake)
    await done.wait()
    return future.result()


def _header_not_found() -> InvalidInput:
    return InvalidInput("header not found")


class EthApi:
    """Ethereum JSON-RPC methods over a `Backend`."""

    def __init__(
        self,
        backend: Backend,
        *,
        filters: FilterRegistry,
        hub: SubscriptionHub,
        client_version: str,
        evm: EvmWorker,
        gas_cap: int,
        max_response_bytes: int,
        accounts: Callable[[], list[bytes]] = list,
        pending_nonce_compat: bool = False,
    ) -> None:
        self.app = backend
        self.pending_nonce_compat = pending_nonce_compat
        self.evm = evm
        self.gas_cap = gas_cap
        self.chain = backend.chain
        self.filters = filters
        self.hub = hub
        self.max_response_bytes = max_response_bytes
        self._filter_sessions: set[int] = set()  # sessions whose close uninstalls their filters
        self.client_version = client_version
        self.accounts = accounts
        # The network side, when the node has one (the BFT engine sets these).
        self.peer_count: Callable[[], int] = lambda: 0
        self.sync_target: Callable[[], int | None] = lambda: None  # best peer height if behind
        # The block fields formatted last, with their header: a batch of lookups in one block
        # formats its fields once (the chain hands out the same cached header object).
        self._last_fields: tuple[BlockHeaderAPI, fmt.BlockFields] | None = None

    # -- registration ---------------------------------------------------------------------
    def install(self, dispatcher: Any) -> None:
        for name in sorted(dir(self)):
            if name.startswith(("eth_", "net_", "web3_", "txpool_")) and name not in (
                "eth_subscribe",
                "eth_unsubscribe",
            ):
                wants_session = name in _FILTER_INSTALLERS
                dispatcher.register(name, getattr(self, name), wants_session=wants_session)
        dispatcher.register(
            "eth_sendRawTransaction",
            self.eth_sendRawTransaction,
            batch=self.send_raw_transactions,
        )
        self.hub.install(dispatcher)

    # -- block resolution -----------------------------------------------------------------
    def _header(self, ref: BlockRef) -> BlockHeaderAPI | None:
        if ref.hash is not None:
            return self.chain.header_by_hash(ref.hash)
        if ref.number is not None:
            return self.chain.header_by_number(ref.number)
        if ref.tag == "earliest":
            return self.chain.header_by_number(0)
        return self.chain.head

    def _require_header(self, value: object, name: str = "block") -> BlockHeaderAPI:
        header = self._header(_block_ref(value, name))
        if header is None:
            raise _header_not_found()
        return header

    # -- simple ---------------------------------------------------------------------------
    def web3_clientVersion(self) -> str:
        return self.client_version

    def web3_sha3(self, value: object) -> str:
        return fmt.d(keccak(data(value, "data")))

    def net_version(self) -> str:
        return str(self.chain.chain_id)

    def net_listening(self) -> bool:
        return True

    def net_peerCount(self) -> str:
        return fmt.q(self.peer_count())

    def eth_chainId(self) -> str:
        return fmt.q(self.chain.chain_id)

    def eth_syncing(self) -> bool | dict[str, str]:
        """False, or while blocksync catches up: where we are and the best peer's height."""
        target = self.sync_target()
        head = int(self.chain.head.block_number)
        if target is None or target <= head:
            return False
        return {
            "startingBlock": fmt.q(head),
            "currentBlock": fmt.q(head),
            "highestBlock": fmt.q(target),
        }

    def eth_mining(self) -> bool:
        return True

    def eth_hashrate(self) -> str:
        return "0x0"

    def eth_coinbase(self) -> str:
        return fmt.d(self.chain.head.coinbase)

    def eth_accounts(self) -> list[str]:
        return [fmt.d(a) for a in self.accounts()]

    def eth_blockNumber(self) -> str:
        return fmt.q(self.chain.head.block_number)

    @property
    def _base_fee_in_blocks(self) -> bool:
        return bool(self.chain.profile.has_base_fee)

    def eth_gasPrice(self) -> str:
        return fmt.q(self.app.min_gas_price)

    def eth_maxPriorityFeePerGas(self) -> str:
        # With a base fee the base fee alone meets the minimum price: no tip is needed.
        return fmt.q(0 if self._base_fee_in_blocks else self.app.min_gas_price)

    def eth_feeHistory(
        self, block_count: object, newest: object, percentiles: object = None
    ) -> dict[str, Any]:
        # geth also takes a plain JSON integer here; web3.py sends hex.
        if isinstance(block_count, int) and not isinstance(block_count, bool) and block_count >= 0:
            count = min(block_count, MAX_FEE_HISTORY)
        else:
            count = min(quantity(block_count, "blockCount"), MAX_FEE_HISTORY)
        # Validated before any block is read: the work is blocks x percentiles.
        wanted = None if percentiles is None else reward_percentiles(percentiles)
        newest_header = self._require_header(newest, "newestBlock")
        newest_number = int(newest_header.block_number)
        oldest = max(0, newest_number - count + 1)
        ratios = []
        rewards = []
        base_fees = []
        for number in range(oldest, newest_number + 1):
            header = self.chain.header_by_number(number)
            assert header is not None
            base_fees.append(header.base_fee_per_gas or 0)
            ratios.append(header.gas_used / header.gas_limit if header.gas_limit else 0.0)
            if wanted is not None:
                rewards.append(self._rewards(header, wanted))
        following = self.chain.header_by_number(newest_number + 1)
        base_fees.append(
            self.chain.next_base_fee() if following is None else following.base_fee_per_gas or 0
        )
        result: dict[str, Any] = {
            "oldestBlock": fmt.q(oldest),
            "baseFeePerGas": [fmt.q(fee) for fee in base_fees],
            "gasUsedRatio": ratios,
        }
        if wanted is not None:
            result["reward"] = rewards
        return result

    def _rewards(self, header: BlockHeaderAPI, percentiles: Sequence[float]) -> list[str]:
        """geth's rule: the block's rewards sorted, each weighted by its gas used; the reward
        at p% is the first whose cumulative gas reaches p% of the block's gas used. A reward
        is the price above the base fee, never negative, 0 for a low-price transaction."""
        number = int(header.block_number)
        txs = self.chain.receipt_transactions(number)
        threshold = self.chain.low_price_threshold(header)
        # Without a base fee (lity) the tip is the whole price: suggest at least the minimum.
        floor = 0 if self._base_fee_in_blocks else threshold
        if not txs:
            return [fmt.q(floor)] * len(percentiles)
        base_fee = header.base_fee_per_gas or 0
        weighted = []
        previous = 0
        for tx, stored in zip(txs, self.chain.receipts(number), strict=True):
            cumulative = stored.receipt.gas_used
            price = tx.price(base_fee)
            reward = 0 if price < threshold else max(0, price - base_fee)
            weighted.append((reward, cumulative - previous))
            previous = cumulative
        weighted.sort()
        total = sum(gas for _, gas in weighted)
        out = []
        index, cumulative = 0, weighted[0][1]
        for p in percentiles:
            while cumulative < total * p / 100 and index < len(weighted) - 1:
                index += 1
                cumulative += weighted[index][1]
            out.append(fmt.q(max(floor, weighted[index][0])))
        return out

    # -- blocks ---------------------------------------------------------------------------
    def _block(self, header: BlockHeaderAPI | None, full: object) -> dict[str, Any] | None:
        if header is None:
            return None
        hydrated = bool_param(full, "hydrated")
        txs = self.chain.transactions(header.block_number)
        if hydrated:
            budget = self._response_budget("the block's transactions")
            for tx in txs:
                budget.charge(tx_json_bytes(len(tx.data)))
        return fmt.block_json(header, txs, full=hydrated)

    def _response_budget(self, what: str) -> ResponseBudget:
        return ResponseBudget(self.max_response_bytes, what)

    def eth_getBlockByNumber(self, block: object, full: object = False) -> dict[str, Any] | None:
        return self._block(self._header(_block_ref(block, "block")), full)

    def eth_getBlockByHash(self, block_hash: object, full: object = False) -> dict[str, Any] | None:
        return self._block(self.chain.header_by_hash(hash32(block_hash, "blockHash")), full)

    def _tx_count(self, header: BlockHeaderAPI | None) -> str | None:
        if header is None:
            return None
        return fmt.q(len(self.chain.transactions(header.block_number)))

    def eth_getBlockTransactionCountByNumber(self, block: object) -> str | None:
        return self._tx_count(self._header(_block_ref(block, "block")))

    def eth_getBlockTransactionCountByHash(self, block_hash: object) -> str | None:
        return self._tx_count(self.chain.header_by_hash(hash32(block_hash, "blockHash")))

    def eth_getUncleCountByBlockNumber(self, block: object) -> str | None:
        return None if self._header(_block_ref(block, "block")) is None else "0x0"

    def eth_getUncleCountByBlockHash(self, block_hash: object) -> str | None:
        found = self.chain.header_by_hash(hash32(block_hash, "blockHash"))
        return None if found is None else "0x0"

    # -- transactions and receipts ----------------------------------------------------------
    def _tx_at(self, header: BlockHeaderAPI | None, index: int) -> dict[str, Any] | None:
        if header is None:
            return None
        tx = self.chain.transaction(header.block_number, index)
        return None if tx is None else fmt.tx_json(tx, block=self._fields(header), index=index)

    def _fields(self, header: BlockHeaderAPI) -> fmt.BlockFields:
        last = self._last_fields
        if last is not None and last[0] is header:
            return last[1]
        fields = fmt.BlockFields.of(header)
        self._last_fields = (header, fields)
        return fields

    def eth_getTransactionByHash(self, tx_hash: object) -> dict[str, Any] | None:
        h = hash32(tx_hash, "transactionHash")
        location = self.chain.tx_location(h)
        if location is None:
            pending = self.app.mempool.get(h)
            return None if pending is None else fmt.tx_json(pending)
        number, index = location
        return self._tx_at(self.chain.header_by_number(number), index)

    def eth_getRawTransactionByHash(self, tx_hash: object) -> str | None:
        """The signed bytes of a mined or pending transaction (null when unknown)."""
        h = hash32(tx_hash, "transactionHash")
        location = self.chain.tx_location(h)
        if location is None:
            pending = self.app.mempool.get(h)
            return None if pending is None else fmt.d(pending.raw)
        tx = self.chain.transaction(*location)
        return None if tx is None else fmt.d(tx.raw)

    def eth_getTransactionByBlockHashAndIndex(
        self, block_hash: object, index: object
    ) -> dict[str, Any] | None:
        header = self.chain.header_by_hash(hash32(block_hash, "blockHash"))
        return self._tx_at(header, quantity(index, "index"))

    def eth_getTransactionByBlockNumberAndIndex(
        self, block: object, index: object
    ) -> dict[str, Any] | None:
        return self._tx_at(self._header(_block_ref(block, "block")), quantity(index, "index"))

    def _receipts(
        self, header: BlockHeaderAPI, budget: ResponseBudget | None = None
    ) -> list[dict[str, Any]]:
        number = header.block_number
        txs = self.chain.receipt_transactions(number)
        receipts = self.chain.receipts(number)
        if budget is not None:
            for stored in receipts:
                budget.charge(receipt_json_bytes(_logs_json_bytes(stored.receipt.logs)))
        block = fmt.BlockFields.of(header)
        out = []
        previous = 0
        log_index = 0
        for index, (tx, stored) in enumerate(zip(txs, receipts, strict=True)):
            cumulative = stored.receipt.gas_used
            out.append(
                fmt.receipt_json(
                    stored,
                    block=block,
                    tx=tx,
                    tx_index=index,
                    gas_used=cumulative - previous,
                    first_log_index=log_index,
                )
            )
            previous = cumulative
            log_index += len(stored.receipt.logs)
        return out

    def eth_getTransactionReceipt(self, tx_hash: object) -> dict[str, Any] | None:
        found = self.chain.located_receipt(hash32(tx_hash, "transactionHash"))
        if found is None:
            return None
        return fmt.receipt_json(
            found.stored,
            block=self._fields(found.header),
            tx=found.tx,
            tx_index=found.index,
            gas_used=found.gas_used,
            first_log_index=found.first_log_index,
        )

    def eth_getBlockReceipts(self, block: object) -> list[dict[str, Any]] | None:
        header = self._header(_block_ref(block, "block"))
        if header is None:
            return None
        return self._receipts(header, self._response_budget("the block's receipts"))

    # -- state ----------------------------------------------------------------------------
    def eth_getBalance(self, account: object, block: object = "latest") -> str:
        addr = address(account, "address")
        return fmt.q(self.chain.state_at(self._require_header(block)).get_balance(addr))

    def eth_getCode(self, account: object, block: object = "latest") -> str:
        addr = address(account, "address")
        return fmt.d(self.chain.state_at(self._require_header(block)).get_code(addr))

    def eth_getStorageAt(self, account: object, slot: object, block: object = "latest") -> str:
        addr = address(account, "address")
        position = storage_slot(slot, "slot")
        value = self.chain.state_at(self._require_header(block)).get_storage(addr, position)
        return f"0x{value:064x}"

    def eth_getTransactionCount(self, account: object, block: object = "latest") -> str:
        addr = address(account, "address")
        ref = _block_ref(block, "block")
        if ref.tag == "pending" or self.pending_nonce_compat:
            return fmt.q(self.app.mempool.pending_nonce(addr))
        header = self._header(ref)
        if header is None:
            raise _header_not_found()
        return fmt.q(self.chain.state_at(header).get_nonce(addr))

    def eth_getProof(self, account: object, slots: object, block: object) -> dict[str, Any]:
        addr = address(account, "address")
        keys = list(_slots(slots, "storageKeys"))
        if len(keys) > MAX_PROOF_KEYS:
            raise LimitExceeded(f"too many storageKeys: {len(keys)} > {MAX_PROOF_KEYS}")
        state = self.chain.state_at(self._require_header(block))
        storage_proofs = state.storage_proof(addr, keys)
        return {
            "address": fmt.d(addr),
            "accountProof": [fmt.d(node) for node in state.account_proof(addr)],
            "balance": fmt.q(state.get_balance(addr)),
            "codeHash": fmt.d(state.get_code_hash(addr)),
            "nonce": fmt.q(state.get_nonce(addr)),
            "storageHash": fmt.d(state.storage_root(addr)),
            "storageProof": [
                {
                    "key": fmt.q(key),
                    "value": fmt.q(state.get_storage(addr, key)),
                    "proof": [fmt.d(node) for node in proof],
                }
                for key, proof in zip(keys, storage_proofs, strict=True)
            ],
        }

    # -- execution ------------------------------------------------------------------------
    def _call_request(self, obj: object, base_fee: int) -> CallRequest:
        """The call of an eth_call/eth_estimateGas object; its price is what a transaction
        with those fee fields pays at `base_fee` (0 without any: geth's NoBaseFee)."""
        if not isinstance(obj, dict):
            raise InvalidParams("transaction: expected an object")
        sender = optional_address(obj.get("from"), "from") or b"\x00" * 20
        to = optional_address(obj.get("to"), "to") or b""
        input_data = optional_data(obj.get("input"), "input")
        legacy_data = optional_data(obj.get("data"), "data")
        if input_data is not None and legacy_data is not None and input_data != legacy_data:
            raise InvalidParams('both "data" and "input" are set and differ')
        gas_price = optional_quantity(obj.get("gasPrice"), "gasPrice")
        max_fee = optional_quantity(obj.get("maxFeePerGas"), "maxFeePerGas")
        tip = optional_quantity(obj.get("maxPriorityFeePerGas"), "maxPriorityFeePerGas")
        if gas_price is not None and (max_fee is not None or tip is not None):
            raise InvalidParams("both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) given")
        if gas_price is not None:
            price = gas_price
        else:
            cap = max_fee if max_fee is not None else 0
            price = min(cap, base_fee + (tip if tip is not None else cap))
        access = obj.get("accessList")
        access_list = () if access is None else _access_list(access)
        return CallRequest(
            sender=sender,
            to=to,
            data=input_data if input_data is not None else (legacy_data or b""),
            value=optional_quantity(obj.get("value"), "value") or 0,
            gas=optional_quantity(obj.get("gas"), "gas"),
            gas_price=price,
            access_list=access_list,
        )

    def _call_inputs(
        self, tx: object, block: object, overrides: object
    ) -> tuple[EvmProfile, Any, bytes, BlockEnv, CallRequest]:
        """What eth_call and eth_estimateGas run: the chain's rules at `block`, and the call."""
        if overrides is not None:
            raise InvalidParams("state overrides are not supported")
        header = self._require_header(block)
        request = self._call_request(tx, header.base_fee_per_gas or 0)
        chain = self.chain
        return chain.profile, chain.db, header.state_root, chain.env_of(header), request

    async def _execute(
        self, work: Callable[..., _Executed], tx: object, block: object, overrides: object
    ) -> _Executed:
        """`work` (run_call or estimate_gas) on the call's inputs, in the EVM worker under the
        gas cap and the deadline; a call that cannot run, or runs out of time, is -32000."""
        inputs = self._call_inputs(tx, block, overrides)
        try:
            return await self.evm.run(
                lambda deadline: work(*inputs, gas_cap=self.gas_cap, deadline=deadline)
            )
        except (CallError, ExecutionTimeout) as exc:
            raise InvalidInput(str(exc)) from None

    async def eth_call(self, tx: object, block: object = "latest", overrides: object = None) -> str:
        result: CallResult = await self._execute(run_call, tx, block, overrides)
        if result.reverted:
            raise ExecutionReverted(result.revert_reason, result.output)
        if not result.success:
            raise InvalidInput(result.error)
        return fmt.d(result.output)

    async def eth_estimateGas(
        self, tx: object, block: object = "latest", overrides: object = None
    ) -> str:
        try:
            gas: int = await self._execute(estimate_gas, tx, block, overrides)
        except EstimateFailed as exc:
            if exc.result.reverted:
                raise ExecutionReverted(exc.result.revert_reason, exc.result.output) from None
            raise InvalidInput(f"gas required exceeds allowance ({exc.result.error})") from None
        return fmt.q(gas)

    async def eth_createAccessList(self, tx: object, block: object = "latest") -> dict[str, Any]:
        """geth's answer: the EIP-2930 list the call needs (evm/call.py `create_access_list`
        says what is left out) and the gas it uses with that list; a failing call still gets
        its list, with geth's `error`."""
        found: tuple[AccessList, CallResult] = await self._execute(
            create_access_list, tx, block, None
        )
        access_list, result = found
        answer: dict[str, Any] = {
            "accessList": [
                {"address": fmt.d(addr), "storageKeys": [f"0x{slot:064x}" for slot in slots]}
                for addr, slots in access_list
            ],
            "gasUsed": fmt.q(result.gas_used),
        }
        if not result.success:
            answer["error"] = result.error
        return answer

    # -- submission -----------------------------------------------------------------------
    def eth_sendRawTransaction(self, raw: object) -> str:
        tx = self.app.check_tx(data(raw, "transaction"))
        return fmt.d(tx.hash)

    async def send_raw_transactions(self, calls: list[list[Any]]) -> list[Any]:
        """Batch form: decode every raw transaction, admit them in chunks of ADMISSION_CHUNK
        with the event loop free between chunks. Admission runs on the loop (the mempool is
        the loop's): a batch of 1,000 in one go held every other request for ~60 ms (issue
        #13: p99 of reads under load). The worker processes recover the senders of every
        chunk, in order, and the loop admits each chunk as its senders arrive (`_result_of`:
        woken by the future's done-callback), while the workers go on with the next. Chunks
        go in order, so a sender's nonces in one batch are admitted in order."""
        raws: list[bytes] = []
        results: list[Any] = [None] * len(calls)
        positions = []
        for i, params in enumerate(calls):
            try:
                raws.append(data(params[0], "transaction"))
                positions.append(i)
            except InvalidParams as exc:
                results[i] = exc
        chunk = ADMISSION_CHUNK
        piece = chunk * CHUNKS_PER_PIECE
        shipped = self.app.ship_senders(raws, piece)  # [] for a small batch: recovered here
        for start in range(0, len(raws), chunk):
            senders = None
            if shipped:
                if start % piece == 0:
                    piece_senders = await _result_of(shipped[start // piece])
                offset = start % piece
                senders = piece_senders[offset : offset + chunk]
            await trio.sleep(0)
            outcomes = self.app.check_txs(raws[start : start + chunk], senders)
            for i, outcome in zip(positions[start : start + chunk], outcomes, strict=True):
                results[i] = outcome if isinstance(outcome, TxRejected) else fmt.d(outcome.hash)
        return results

    # -- logs and filters -----------------------------------------------------------------
    def _block_logs(
        self,
        header: BlockHeaderAPI,
        log_filter: LogFilter,
        budget: ResponseBudget | None = None,
    ) -> list[dict[str, Any]]:
        if not bloom_may_match(log_filter, header.bloom):
            return []
        number = header.block_number
        block = fmt.BlockFields.of(header)
        out: list[dict[str, Any]] = []
        log_index = 0
        for tx_index, stored in enumerate(self.chain.receipts(number)):
            logs = stored.receipt.logs
            if not logs:
                continue
            matching = [
                i
                for i, log in enumerate(logs)
                if log_matches(log_filter, log.address, [t.to_bytes(32, "big") for t in log.topics])
            ]
            if matching and budget is not None:
                budget.charge(_logs_json_bytes(logs[i] for i in matching))
            if matching:
                # Only transactions with matching logs are read (for their hash).
                tx = self.chain.receipt_transaction(number, tx_index)
                assert tx is not None
                entries = fmt.logs_json(
                    stored.receipt,
                    block=block,
                    tx_hash=fmt.d(tx.hash),
                    tx_index=tx_index,
                    first_log_index=log_index,
                )
                out.extend(entries[i] for i in matching)
            log_index += len(logs)
        return out

    def _logs(self, log_filter: LogFilter) -> list[dict[str, Any]]:
        budget = self._response_budget("the logs")
        if log_filter.block_hash is not None:
            header = self.chain.header_by_hash(log_filter.block_hash)
            if header is None:
                raise InvalidInput("unknown block")
            return self._block_logs(header, log_filter, budget)
        head = self.chain.head.block_number
        lo = self._bound(log_filter.from_block, head)
        hi = self._bound(log_filter.to_block, head)
        if lo > hi:
            return []
        if hi - lo + 1 > MAX_LOG_BLOCK_RANGE:
            raise LimitExceeded(f"block range too large (limit {MAX_LOG_BLOCK_RANGE} blocks)")
        out: list[dict[str, Any]] = []
        for number in range(lo, min(hi, head) + 1):
            header = self.chain.header_by_number(number)
            assert header is not None
            out.extend(self._block_logs(header, log_filter, budget))
            if len(out) > MAX_LOGS:
                raise LimitExceeded(f"query returned more than {MAX_LOGS} results")
        return out

    @staticmethod
    def _bound(value: Any, head: int) -> int:
        if isinstance(value, int):
            return value
        if value == "earliest":
            return 0
        return head

    def eth_getLogs(self, filter_obj: object) -> list[dict[str, Any]]:
        return self._logs(parse_log_filter(filter_obj))

    def _filter_owner(self, session: Session | None) -> str:
        """Who a new filter counts against: its WebSocket connection, or its HTTP client's
        address (filters outlive HTTP connections, so a per-connection quota could be evaded
        by reconnecting). A connection's filters are uninstalled when it closes."""
        if session is None:
            return f"http:{http_client.get() or 'local'}"
        owner = f"ws:{session.id}"
        if session.id not in self._filter_sessions:
            self._filter_sessions.add(session.id)
            session_id = session.id
            session.on_close(lambda: self._drop_session_filters(session_id, owner))
        return owner

    def _drop_session_filters(self, session_id: int, owner: str) -> None:
        self._filter_sessions.discard(session_id)
        self.filters.drop_owner(owner)

    def eth_newFilter(self, session: Session | None, filter_obj: object) -> str:
        log_filter = parse_log_filter(filter_obj)
        return self.filters.install_log_filter(log_filter, self._filter_owner(session))

    def eth_newBlockFilter(self, session: Session | None) -> str:
        return self.filters.install_block_filter(self._filter_owner(session))

    def eth_newPendingTransactionFilter(self, session: Session | None) -> str:
        return self.filters.install_pending_filter(self._filter_owner(session))

    def eth_getFilterChanges(self, filter_id: object) -> list[Any]:
        return self.filters.changes(filter_id)

    def eth_getFilterLogs(self, filter_id: object) -> list[dict[str, Any]]:
        return self._logs(self.filters.log_filter(filter_id))

    def eth_uninstallFilter(self, filter_id: object) -> bool:
        return self.filters.uninstall(filter_id)

    # -- txpool ---------------------------------------------------------------------------
    def txpool_status(self) -> dict[str, str]:
        return {
            "pending": fmt.q(self.app.mempool.pending_count),
            "queued": fmt.q(self.app.mempool.queued_count),
        }

    def txpool_content(self) -> dict[str, Any]:
        def group(by_sender: dict[bytes, list[SignedTx]]) -> dict[str, Any]:
            return {
                fmt.d(sender): {str(tx.nonce): fmt.tx_json(tx) for tx in txs}
                for sender, txs in sorted(by_sender.items())
            }

        pending = self.app.mempool.pending_by_sender()
        queued = self.app.mempool.queued_by_sender()
        budget = self._response_budget("the pool's transactions (see txpool_status)")
        for by_sender in (pending, queued):
            for txs in by_sender.values():
                for tx in txs:
                    budget.charge(tx_json_bytes(len(tx.data)))
        return {"pending": group(pending), "queued": group(queued)}

    def txpool_inspect(self) -> dict[str, Any]:
        """geth's summary: pending/queued -> sender -> nonce -> "to: value wei + gas gas x
        price wei" (the price is the fee cap, as geth's GasPrice() of a dynamic-fee tx)."""

        def line(tx: SignedTx) -> str:
            target = to_checksum(tx.to) if tx.to else "contract creation"
            return f"{target}: {tx.value} wei + {tx.gas} gas × {tx.fee_cap} wei"

        def group(by_sender: dict[bytes, list[SignedTx]]) -> dict[str, Any]:
            return {
                fmt.d(sender): {str(tx.nonce): line(tx) for tx in txs}
                for sender, txs in sorted(by_sender.items())
            }

        return {
            "pending": group(self.app.mempool.pending_by_sender()),
            "queued": group(self.app.mempool.queued_by_sender()),
        }

    # -- notifications from the node ------------------------------------------------------
    def block_notifications(self, header: BlockHeaderAPI) -> tuple[dict[str, Any], list[Any]]:
        """The newHeads payload and the block's logs, for filters and subscriptions."""
        everything = LogFilter()
        logs = self._block_logs(header, everything) if header.bloom else []
        self.filters.push_block(fmt.d(header.hash), logs)
        return fmt.header_json(header), logs

    def pending_notifications(self, txs: Sequence[SignedTx]) -> list[str]:
        hashes = [fmt.d(tx.hash) for tx in txs]
        self.filters.push_pending(hashes)
        return hashes


def _access_list(value: object) -> tuple[tuple[bytes, tuple[int, ...]], ...]:
    """An EIP-2930 access list: [{"address", "storageKeys": [slot, ...]}, ...]."""
    entries = []
    for i, item in enumerate(array(value, "accessList", "access list entries")):
        entry = json_object(item, f"accessList[{i}]")
        keys = entry.get("storageKeys")
        slots = () if keys is None else _slots(keys, f"accessList[{i}].storageKeys")
        entries.append((address(entry.get("address"), f"accessList[{i}].address"), slots))
    return tuple(entries)


def _slots(value: object, name: str) -> tuple[int, ...]:
    return tuple(
        storage_slot(key, f"{name}[{j}]")
        for j, key in enumerate(array(value, name, "storage slots"))
    )


def reward_percentiles(value: object) -> list[float]:
    """eth_feeHistory's rewardPercentiles: at most 100 numbers in [0, 100], monotonically
    increasing (execution-apis; geth refuses a decrease and allows repeats)."""
    name = "rewardPercentiles"
    if not isinstance(value, list):
        raise InvalidParams(f"invalid {name}: expected an array of numbers")
    if len(value) > MAX_REWARD_PERCENTILES:
        raise InvalidParams(
            f"invalid {name}: {len(value)} percentiles, at most {MAX_REWARD_PERCENTILES} allowed"
        )
    out: list[float] = []
    for i, p in enumerate(value):
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 100:
            raise InvalidParams(
                f"invalid {name}[{i}]: expected a number from 0 to 100, got {p!r:.40}"
            )
        if out and p < out[-1]:
            raise InvalidParams(
                f"invalid {name}[{i}]: {p} is below {name}[{i - 1}] = {out[-1]} "
                "(percentiles must not decrease)"
            )
        out.append(float(p))
    return out


def _logs_json_bytes(logs: Iterable[Any]) -> int:
    """A lower bound of the JSON size of these stored logs."""
    return sum(log_json_bytes(len(log.topics), len(log.data)) for log in logs)


def _block_ref(value: object, name: str) -> BlockRef:
    """A block number, tag, EIP-1898 object, or a bare 32-byte block hash (as geth accepts)."""
    if isinstance(value, str) and len(value) == 66:
        return BlockRef(hash=hash32(value, name))
    return block_ref(value, name)


def client_version(profile: str) -> str:
    return f"cybermiles/v{VERSION}/{profile}/python{platform.python_version()}"
