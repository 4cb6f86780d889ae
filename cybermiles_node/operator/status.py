"""What the read-only Tendermint-style endpoint reports, gathered from the running node.

`NodeStatus` implements `rpc.tendermint.StatusSource`. Shapes follow Tendermint's RPC (heights
and powers as decimal strings, validator addresses as upper-case hex, keys and signatures in
base64) with one deliberate difference: block hashes, state roots and transaction roots are
the Ethereum values, written `0x…`, because those are what every other tool of this chain
shows.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from eth.abc import BlockHeaderAPI

from consensus.core import ConsensusState, proposer_of
from consensus.keys import Ed25519Key
from consensus.types import BlockID, Commit, Validator
from consensus.validators import ValidatorSet
from cybermiles_node.application.blocks import BlockMeta
from cybermiles_node.application.consensus_app import ChainConsensus, ConsensusRecords
from rpc.cmt_chain import Decision

VERSION = "cybermiles-node/0.1.0"
PUBKEY_TYPE = "tendermint/PubKeyEd25519"


class NodeStatus:
    def __init__(
        self,
        *,
        consensus: ChainConsensus,
        node_key: Ed25519Key,
        validator_key: Ed25519Key,
        moniker: str,
        net_info: Callable[[], dict[str, Any]],
        round_state: Callable[[], ConsensusState],
        listen_addr: Callable[[], str],
        catching_up: Callable[[], bool],
    ) -> None:
        self.consensus = consensus
        self.chain = consensus.app.chain
        self.node_key = node_key
        self.validator_key = validator_key
        self.moniker = moniker
        self._net_info = net_info
        self._round_state = round_state
        self._listen_addr = listen_addr
        self._catching_up = catching_up

    def node_info(self) -> dict[str, Any]:
        return {
            "id": self.node_key.node_id,
            "listen_addr": self._listen_addr(),
            "network": self.consensus.chain_id,
            "version": VERSION,
            "moniker": self.moniker,
            "channels": "0020212230384000",
        }

    def sync_info(self) -> dict[str, Any]:
        head = self.chain.head
        return {
            "latest_block_hash": _hex(head.hash),
            "latest_app_hash": _hex(head.state_root),
            "latest_block_height": str(head.block_number),
            "latest_block_time": _time(head.timestamp),
            "earliest_block_height": "0",
            "catching_up": self._catching_up(),
        }

    def validator_info(self) -> dict[str, Any]:
        me = Validator(self.validator_key.public_key, 1)
        member = self.consensus.state.validators.get(me.address)
        power = 0 if member is None else member[1].power
        return {**_validator_json(me, None), "voting_power": str(power)}

    def validators(self, height: int | None) -> dict[str, Any]:
        head = self.chain.head_number
        if height is None:
            height = head + 1
        if height == head + 1:
            vset: ValidatorSet | None = self.consensus.state.validators
        else:
            vset = self.consensus.records.validators_at(height)
        if vset is None or height > head + 1:
            raise LookupError(_too_high(height, head + 1))
        validators = [
            _validator_json(v, p) for v, p in zip(vset.validators, vset.priorities, strict=True)
        ]
        return {
            "block_height": str(height),
            "validators": validators,
            "count": str(len(validators)),
            "total": str(len(validators)),
        }

    def net_info(self) -> dict[str, Any]:
        return self._net_info()

    def block(self, height: int | None) -> dict[str, Any]:
        header, commit, meta = self._decided(height)
        txs = [
            base64.b64encode(tx.raw).decode() for tx in self.chain.transactions(header.block_number)
        ]
        return {
            "block_id": _block_id_json(commit.block_id),
            "block": {
                "header": self._header_json(header, meta),
                "data": {"txs": txs},
                "evidence": {"evidence": [_evidence_json(ev) for ev in meta.evidence]},
                "last_commit": None if meta.last_commit is None else _commit_json(meta.last_commit),
            },
        }

    def commit(self, height: int | None) -> dict[str, Any]:
        header, commit, meta = self._decided(height)
        return {
            "signed_header": {
                "header": self._header_json(header, meta),
                "commit": _commit_json(commit),
            },
            "canonical": True,
        }

    def consensus_state(self) -> dict[str, Any]:
        """Where consensus is, and the voting power seen in its current round (a subset of
        Tendermint's /consensus_state: enough to tell a live round from a stuck one)."""
        state = self._round_state()
        prevotes = state.votes.prevotes(state.round)
        precommits = state.votes.precommits(state.round)
        return {
            "round_state": {
                "height/round/step": f"{state.height}/{state.round}/{int(state.step)}",
                "height": str(state.height),
                "round": state.round,
                "step": state.step.name,
                "proposer": proposer_of(state, state.round).hex().upper(),
                "locked_round": state.locked_round,
                "valid_round": state.valid_round,
                "total_power": str(state.validators.total_power),
                "prevotes_power": str(prevotes.power),
                "precommits_power": str(precommits.power),
            }
        }

    # -- helpers ---------------------------------------------------------------------------
    def _decided(self, height: int | None) -> tuple[BlockHeaderAPI, Commit, BlockMeta]:
        head = self.chain.head_number
        number = head if height is None else height
        if number > head:
            raise LookupError(_too_high(number, head))
        header = self.chain.header_by_number(number)
        decision = self.consensus.records.decision_at(number)
        if header is None or decision is None:
            raise LookupError(f"height {number} has no BFT commit (genesis, or not stored)")
        commit, meta = decision
        return header, commit, meta

    def _header_json(self, header: BlockHeaderAPI, meta: BlockMeta) -> dict[str, Any]:
        return {
            "chain_id": self.consensus.chain_id,
            "height": str(header.block_number),
            "time": _time(header.timestamp),
            "last_block_id": {"hash": _hex(header.parent_hash)},
            "proposer_address": meta.proposer.hex().upper(),
            "validators_hash": meta.validators_hash.hex().upper(),
            "next_validators_hash": meta.next_validators_hash.hex().upper(),
            "last_commit_hash": ""
            if meta.last_commit is None
            else meta.last_commit.hash().hex().upper(),
            "app_hash": _hex(header.state_root),
            "data_hash": _hex(header.transaction_root),
            "evidence_count": str(len(meta.evidence)),
            "eth_block_hash": _hex(header.hash),
            "mix_hash": _hex(header.mix_hash),
        }


def stored_decision(records: ConsensusRecords, height: int) -> Decision | None:
    """The BFT commit record of block `height` in Tendermint's shapes, for cmt_getBlockByNumber
    (rpc/cmt_chain.py); None for genesis and on a devnet without BFT."""
    decided = records.decision_at(height)
    if decided is None:
        return None
    commit, meta = decided
    return Decision(
        block_id=_block_id_json(commit.block_id),
        proposer_address=meta.proposer.hex().upper(),
        validators_hash=meta.validators_hash.hex().upper(),
        next_validators_hash=meta.next_validators_hash.hex().upper(),
        last_commit_hash="" if meta.last_commit is None else meta.last_commit.hash().hex().upper(),
        last_commit=None if meta.last_commit is None else _commit_json(meta.last_commit),
        evidence=[_evidence_json(ev) for ev in meta.evidence],
    )


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _too_high(height: int, current: int) -> str:
    return f"height {height} must be less than or equal to the current blockchain height {current}"


def _validator_json(validator: Validator, priority: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "address": validator.address.hex().upper(),
        "pub_key": {"type": PUBKEY_TYPE, "value": base64.b64encode(validator.pub_key).decode()},
        "voting_power": str(validator.power),
    }
    if priority is not None:
        body["proposer_priority"] = str(priority)
    return body


def _block_id_json(block_id: BlockID) -> dict[str, Any]:
    return {
        "hash": _hex(block_id.hash),
        "parts": {"total": block_id.parts_total, "hash": block_id.parts_hash.hex().upper()},
    }


def _commit_json(commit: Commit) -> dict[str, Any]:
    return {
        "height": str(commit.height),
        "round": commit.round,
        "block_id": _block_id_json(commit.block_id),
        "signatures": [
            {
                "block_id_flag": 2,
                "validator_address": sig.validator.hex().upper(),
                "signature": base64.b64encode(sig.signature).decode(),
            }
            for sig in commit.signatures
        ],
    }


def _evidence_json(ev: Any) -> dict[str, Any]:
    return {
        "type": "tendermint/DuplicateVoteEvidence",
        "height": str(ev.height),
        "validator_address": ev.validator.hex().upper(),
        "hash": ev.hash().hex().upper(),
    }
