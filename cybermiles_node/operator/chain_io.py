"""`cybermiles export` and `cybermiles import`: the blocks of a node home to a file and back.

The file (version 1):

    MAGIC (8 bytes) | version (2 bytes, big-endian) | record | record | ...
    record = length (4 bytes, big-endian) | payload (msgpack, consensus.types.canonical)

The first record describes the file: {"chain_id", "genesis_hash", "engine", "first", "last"}.
Each following record is one block in our wire format's fields, plus its commit:
`[header_rlp, [raw_tx, ...], metadata | None, commit | None]`: a BFT block carries its
consensus metadata (application/blocks.py) and the commit that decided it; an automine
(devnet) block carries neither.

Import runs every block through the normal pipeline, the one blocksync uses: a BFT block goes
to `ChainConsensus.commit_block` (metadata, commit signatures, execution, roots), an automine
block to `ChainApp.validate_block` + `commit` (execution, roots). The home may be fresh or
shorter than the file: blocks it already has are compared by hash and skipped. A file of another
genesis, of the other engine, with a gap (in the file, or between the home's head and the
file's first block), or a block that does not validate, stops the import with one line naming
it; the blocks before it stay committed, nothing after it is.

`read_blocks`/`BlockRecord`/`FileInfo` are the pure codec; `export_home` and `import_home` open
a home (not while a node runs it: LevelDB's lock refuses) and report progress through a callback.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

import msgpack
import rlp
from eth.abc import BlockHeaderAPI

from consensus.errors import ConsensusError
from consensus.parts import MAX_BLOCK_BYTES
from consensus.types import Commit, canonical
from consensus.verify import verify_commit
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.blocks import BlockMeta, WireBlock, encode_block
from cybermiles_node.application.chain import BlockRejected, Chain
from cybermiles_node.application.consensus_app import ChainConsensus, ConsensusRecords
from cybermiles_node.application.randomness import VrfBeacon
from cybermiles_node.errors import CyberMilesError
from cybermiles_node.operator.config import HomeLayout, load_config
from evm.db import DatabaseUnavailable, LevelDB
from evm.errors import TxRejected
from evm.header_codec import decode_header
from genesis import Genesis, GenesisError, load_genesis

MAGIC: Final = b"CMTBLKS\x00"
VERSION: Final = 1
MAX_RECORD_BYTES: Final = MAX_BLOCK_BYTES + (1 << 20)  # a block and its commit
Engine = Literal["automine", "bft"]
ENGINES: Final = ("automine", "bft")
Progress = Callable[[int, int], None]  # (block number done, blocks in all), once per block


class ChainFileError(CyberMilesError):
    """The file or the home cannot be exported or imported as asked; the message says why."""


@dataclass(frozen=True)
class FileInfo:
    chain_id: int
    genesis_hash: bytes
    engine: Engine
    first: int
    last: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_hash": self.genesis_hash,
            "engine": self.engine,
            "first": self.first,
            "last": self.last,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> FileInfo:
        try:
            info = cls(
                int(obj["chain_id"]),
                bytes(obj["genesis_hash"]),
                obj["engine"],
                int(obj["first"]),
                int(obj["last"]),
            )
        except (TypeError, KeyError, ValueError):
            raise ChainFileError("the file's description record is malformed") from None
        if info.engine not in ENGINES or not 1 <= info.first <= info.last + 1:
            raise ChainFileError("the file's description record is malformed")
        return info


@dataclass(frozen=True)
class BlockRecord:
    header: BlockHeaderAPI
    raw_txs: tuple[bytes, ...]
    meta: BlockMeta | None  # a BFT block's consensus metadata; None for automine
    commit: Commit | None

    @property
    def number(self) -> int:
        return int(self.header.block_number)

    def to_wire(self) -> list[Any]:
        meta = None if self.meta is None else self.meta.to_wire()
        commit = None if self.commit is None else self.commit.to_wire()
        return [rlp.encode(self.header), list(self.raw_txs), meta, commit]

    @classmethod
    def from_wire(cls, obj: Any) -> BlockRecord:
        if not isinstance(obj, list) or len(obj) != 4:
            raise ValueError("a block record is [header, txs, metadata, commit]")
        header_rlp, txs, meta, commit = obj
        if not isinstance(txs, list) or not all(isinstance(tx, bytes) and tx for tx in txs):
            raise ValueError("transactions must be non-empty byte strings")
        header = decode_header(header_rlp)
        return cls(
            header,
            tuple(txs),
            None if meta is None else BlockMeta.from_wire(meta),
            None if commit is None else Commit.from_wire(commit),
        )


def _record(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def file_start(info: FileInfo) -> bytes:
    return MAGIC + struct.pack(">H", VERSION) + _record(canonical(info.to_wire()))


def block_bytes(record: BlockRecord) -> bytes:
    return _record(canonical(record.to_wire()))


def _read_record(stream: IO[bytes], what: str) -> bytes | None:
    prefix = stream.read(4)
    if not prefix:
        return None
    if len(prefix) < 4:
        raise ChainFileError(f"{what}: the file ends inside a record")
    (length,) = struct.unpack(">I", prefix)
    if length > MAX_RECORD_BYTES:
        raise ChainFileError(f"{what}: record of {length} bytes is over {MAX_RECORD_BYTES}")
    payload = stream.read(length)
    if len(payload) < length:
        raise ChainFileError(f"{what}: the file ends inside a record")
    return payload


def _unpack(payload: bytes) -> Any:
    return msgpack.unpackb(payload, raw=False, strict_map_key=True, max_ext_len=0)


def read_info(stream: IO[bytes]) -> FileInfo:
    head = stream.read(len(MAGIC) + 2)
    if head[: len(MAGIC)] != MAGIC:
        raise ChainFileError("not a block file of `cybermiles export`")
    (version,) = struct.unpack(">H", head[len(MAGIC) :])
    if version != VERSION:
        raise ChainFileError(f"block file version {version}; this program reads {VERSION}")
    payload = _read_record(stream, "description")
    if payload is None:
        raise ChainFileError("the file has no description record")
    try:
        return FileInfo.from_wire(_unpack(payload))
    except (ValueError, msgpack.UnpackException):
        raise ChainFileError("the file's description record is malformed") from None


def read_blocks(stream: IO[bytes], info: FileInfo) -> Iterator[BlockRecord]:
    """The blocks after `read_info`, checked to be info.first..info.last without a gap."""
    expected = info.first
    while (payload := _read_record(stream, f"block {expected}")) is not None:
        try:
            record = BlockRecord.from_wire(_unpack(payload))
        except Exception as exc:  # msgpack and rlp raise many types for damaged bytes
            raise ChainFileError(f"block {expected}: malformed record ({exc})") from None
        if record.number != expected:
            raise ChainFileError(f"gap in the file: block {record.number} follows {expected - 1}")
        yield record
        expected += 1
    if expected != info.last + 1:
        raise ChainFileError(f"the file ends after block {expected - 1}, not {info.last}")


# -- the shell: homes ------------------------------------------------------------------------


@dataclass
class _OpenHome:
    """A home's chain opened for export or import (closed by `close`)."""

    db: LevelDB
    app: ChainApp
    genesis: Genesis
    engine: Engine

    def close(self) -> None:
        self.app.close()
        self.db.close()


def _open(home: Path) -> _OpenHome:
    from cybermiles_node.node import app_config, open_chain  # the composition root's way

    layout = HomeLayout(home)
    if not layout.config_file.exists():
        raise ChainFileError(f"{home} is not a node home (no {layout.config_file})")
    config = load_config(layout.config_file)
    try:
        genesis = load_genesis(layout.genesis_file)
    except GenesisError as exc:
        raise ChainFileError(f"{layout.genesis_file}: {exc}") from None
    try:
        db, chain = open_chain(layout, config, genesis)
    except DatabaseUnavailable as exc:  # e.g. its node runs: LevelDB's lock
        raise ChainFileError(str(exc)) from None
    engine: Engine = "bft" if config.consensus.engine == "bft" else "automine"
    return _OpenHome(db, ChainApp(chain, app_config(config)), genesis, engine)


def export_home(
    home: Path, out: IO[bytes], first: int | None, last: int | None, progress: Progress
) -> FileInfo:
    """Write blocks first..last (default: 1..head) of `home` to `out`."""
    opened = _open(home)
    try:
        chain = opened.app.chain
        head = chain.head_number
        first = 1 if first is None else first
        last = head if last is None else last
        if not 1 <= first <= last + 1 or last > head:
            raise ChainFileError(f"--from {first} --to {last}: the home holds blocks 1..{head}")
        info = FileInfo(
            opened.genesis.chain_id,
            bytes(chain.genesis_header.hash),
            opened.engine,
            first,
            last,
        )
        out.write(file_start(info))
        records = ConsensusRecords(chain.db)
        for number in range(first, last + 1):
            header = chain.header_by_number(number)
            if header is None:
                raise ChainFileError(f"block {number} is missing from the home's store")
            raws = tuple(tx.raw for tx in chain.transactions(number))
            meta: BlockMeta | None = None
            commit: Commit | None = None
            if opened.engine == "bft":
                decision = records.decision_at(number)
                if decision is None:
                    raise ChainFileError(f"block {number} has no stored commit")
                commit, meta = decision
            out.write(block_bytes(BlockRecord(header, raws, meta, commit)))
            progress(number, last - first + 1)
        return info
    finally:
        opened.close()


def import_home(home: Path, source: IO[bytes], progress: Progress) -> tuple[FileInfo, int]:
    """Validate, execute and commit the file's blocks into `home`; returns the file's
    description and the number of blocks committed (those the home had are skipped)."""
    info = read_info(source)
    opened = _open(home)
    try:
        chain = opened.app.chain
        if bytes(chain.genesis_header.hash) != info.genesis_hash:
            raise ChainFileError(
                f"the file's chain has genesis 0x{info.genesis_hash.hex()}, this home's is "
                f"0x{bytes(chain.genesis_header.hash).hex()}: a different chain"
            )
        if info.engine != opened.engine:
            raise ChainFileError(
                f"the file holds {info.engine} blocks; this home runs {opened.engine} consensus"
            )
        if info.first > chain.head_number + 1:
            raise ChainFileError(
                f"gap: the file starts at block {info.first}, this home's head is block "
                f"{chain.head_number}"
            )
        commit = _committer(opened)
        committed = 0
        for record in read_blocks(source, info):
            if record.number <= chain.head_number:
                _check_known(chain, record)
            else:
                commit(record)
                committed += 1
            progress(record.number, info.last - info.first + 1)
        return info, committed
    finally:
        opened.close()


def _check_known(chain: Chain, record: BlockRecord) -> None:
    ours = chain.header_by_number(record.number)
    if ours is None or bytes(ours.hash) != bytes(record.header.hash):
        raise ChainFileError(
            f"block {record.number}: the home has another block at this height (a fork)"
        )


def _committer(opened: _OpenHome) -> Callable[[BlockRecord], None]:
    """How one block goes through the pipeline for the file's engine; any refusal is a
    ChainFileError naming the block."""
    app = opened.app
    if opened.engine == "automine":

        def automine(record: BlockRecord) -> None:
            try:
                ctx = app.chain.context_of(record.header)
                app.commit(app.validate_block(ctx, record.header, record.raw_txs))
            except (BlockRejected, TxRejected) as exc:
                raise ChainFileError(f"block {record.number} is refused: {exc}") from None

        return automine

    consensus = ChainConsensus(app, genesis=opened.genesis, key=None, beacon=VrfBeacon())

    def bft(record: BlockRecord) -> None:
        if record.commit is None or record.meta is None:
            raise ChainFileError(f"block {record.number}: a BFT block without its commit")
        block_hash = bytes(record.header.hash)
        try:
            # What the driver checks before a blocksync'd block reaches commit_block.
            verify_commit(
                consensus.chain_id,
                consensus.state.validators,
                record.commit,
                block_hash=block_hash,
                height=record.number,
            )
            wire = WireBlock(record.header, record.raw_txs, record.meta)
            consensus.commit_block(record.number, block_hash, encode_block(wire), record.commit)
        except (ConsensusError, BlockRejected, TxRejected) as exc:
            raise ChainFileError(f"block {record.number} is refused: {exc}") from None

    return bft
