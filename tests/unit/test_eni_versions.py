"""ENI library versions chosen by chain state (issue #10, SPEC §7 deploy_libeni).

The registry (evm/eni/registry.py) lists the versions the node ships; `reverse` has two, whose
outputs differ on multi-byte UTF-8: Travis's v1.3.7 reverses bytes, our v2.0.0 code points.
A block runs the defaults with the versions the state enables on top
(`cybermiles_node/governance/versions.py`), carried in `BlockEnv.eni_versions`: checked here
through the ENI opcode (lity) and the ENI precompile (both profiles), in blocks built and
validated by `Chain`, and in eth_call / eth_estimateGas at different heights.

The version switch is written by a test-only module in a block's end_block with
`enable_eni_version`, as governance's end_block will when a deploy_libeni proposal is approved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Literal

import pytest
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from consensus.keys import Ed25519Key
from cybermiles_node.application.chain import Chain
from cybermiles_node.errors import InvariantViolation
from cybermiles_node.governance.versions import enable_eni_version, parse_version
from cybermiles_node.modules import BlockOutcome, ModuleSet
from cybermiles_node.system.context import BlockContext
from evm import eni
from evm import precompiles as pc
from evm.call import CallRequest, EstimateFailed, estimate_gas, run_call
from evm.cvm import EniFailure
from evm.db import MemoryDB
from evm.eni import (
    CODE_POINT_REVERSE_VERSION,
    TRAVIS_VERSION,
    EniError,
    Registry,
    UnknownEniVersion,
    available,
    default_version,
    is_available,
    run,
)
from evm.profiles import CVM, LITY, EvmProfile
from evm.state import StateDB
from evm.transactions import SignedTx, decode_transaction
from genesis import AllocAccount, Genesis, dev_accounts, devnet_genesis
from tests.unit.test_cvm_opcodes import push
from tests.unit.test_cvm_opcodes import run_code as run_cvm_code
from tests.unit.test_cvm_precompiles import call_precompile, eni_data
from tests.unit.test_cvm_precompiles import make_env as precompile_env
from tests.unit.test_cvm_precompiles import new_state as precompile_state
from tests.unit.test_lity_profile import ENI_TAIL, eni_setup

TEXT = "héllo wörld".encode()  # two 2-byte characters
BYTE_REVERSED = TEXT[::-1]  # v1.3.7: é and ö come out as swapped (invalid) byte pairs
CODE_POINT_REVERSED = "dlröw olléh".encode()  # v2.0.0
BAD = b"ab\xffc"  # not UTF-8: v1.3.7 reverses its bytes, v2.0.0 refuses it
V2 = {"reverse": CODE_POINT_REVERSE_VERSION}
SENDER = dev_accounts(3)[2]
NOW = 1_700_000_100
VALIDATOR = Ed25519Key.from_seed(b"\x01" * 32)
GAS_PRICE = 2 * 10**9


# --- the registry ----------------------------------------------------------------------------


def test_every_version_is_vxyz_oldest_first_and_the_default_is_the_first() -> None:
    versions = available()
    for name, listed in versions.items():
        parsed = [parse_version(v) for v in listed]  # governance's definition of the format
        assert parsed == sorted(parsed) and len(set(parsed)) == len(parsed), name
        assert default_version(name) == listed[0]
        assert all(is_available(name, v) for v in listed)
    assert (
        versions["reverse"]
        == (TRAVIS_VERSION, CODE_POINT_REVERSE_VERSION)
        == (
            "v1.3.7",
            "v2.0.0",
        )
    )
    assert default_version("no_such_function") is None
    assert not is_available("reverse", "v1.3.8") and not is_available("nope", "v1.0.0")
    assert Registry.default().enabled() == {name: v[0] for name, v in versions.items()}


def test_governed_puts_the_state_versions_on_the_defaults() -> None:
    registry = Registry.governed(V2)
    assert registry.version_of("reverse") == "v2.0.0"
    assert registry.version_of("scrypt") == "v1.3.7"  # the others keep their defaults
    assert registry == Registry.governed(dict(V2)) != Registry.default()
    assert Registry.governed({"reverse": "v1.3.7"}) == Registry.default()
    registry.enabled()["reverse"] = "v1.3.7"  # a copy: the registry cannot be changed
    assert registry.version_of("reverse") == "v2.0.0"


@pytest.mark.parametrize(
    "versions",
    [{"reverse": "v9.9.9"}, {"reverse": "1.3.7"}, {"no_such_function": "v1.0.0"}],
    ids=["unknown-version", "unprefixed", "unknown-function"],
)
def test_a_version_the_node_lacks_is_refused_and_is_no_contract_error(
    versions: dict[str, str],
) -> None:
    with pytest.raises(UnknownEniVersion, match="has no version") as info:
        Registry.governed(versions)
    assert not isinstance(info.value, EniError)  # never mistaken for one call's failure


# --- the two versions of reverse -------------------------------------------------------------


def reverse(text: bytes, registry: Registry) -> tuple[bytes, int]:
    result, gas = eni.precompile_call("reverse", json_args(text), registry)
    return eni.bytes_from_text(result), gas


def json_args(*texts: bytes) -> str:
    return json.dumps([eni.text_from_bytes(t) for t in texts], ensure_ascii=False)


def test_v1_reverses_bytes_and_v2_code_points_for_the_same_gas() -> None:
    old, old_gas = reverse(TEXT, Registry.default())
    new, new_gas = reverse(TEXT, Registry.governed(V2))
    assert old == BYTE_REVERSED and new == CODE_POINT_REVERSED
    assert old_gas == new_gas == eni.ENI_BASE_GAS + 10 * len(TEXT)
    with pytest.raises(UnicodeDecodeError):
        old.decode()  # v1.3.7 broke the text
    # Code points, not grapheme clusters (no Unicode database in consensus): a combining
    # accent moves to the other side of its letter.
    assert reverse("e\u0301x".encode(), Registry.governed(V2))[0] == "x\u0301e".encode()
    assert reverse("ab😀".encode(), Registry.governed(V2))[0] == "😀ba".encode()


def test_v2_refuses_invalid_utf8_that_v1_reverses() -> None:
    assert reverse(BAD, Registry.default())[0] == BAD[::-1]
    with pytest.raises(EniError, match="not valid UTF-8"):
        reverse(BAD, Registry.governed(V2))
    with pytest.raises(EniError):
        run("reverse", '["\\ud800"]', Registry.governed(V2))  # a lone surrogate escape


@given(st.text())
def test_v2_is_its_own_inverse_and_agrees_with_v1_on_ascii(text: str) -> None:
    v2 = Registry.governed(V2)
    once = reverse(text.encode(), v2)[0]
    assert reverse(once, v2)[0] == text.encode()
    ascii_text = text.encode("ascii", "ignore")
    assert reverse(ascii_text, v2) == reverse(ascii_text, Registry.default())


# --- the VM reads the versions from BlockEnv -------------------------------------------------


def test_block_env_builds_its_registry_and_refuses_unknown_versions() -> None:
    assert precompile_env().eni_registry == Registry.default()
    assert precompile_env(eni_versions=V2).eni_registry == Registry.governed(V2)
    with pytest.raises(UnknownEniVersion):
        precompile_env(eni_versions={"reverse": "v9.9.9"})


def opcode_result(env_versions: dict[str, str], argument: bytes):
    env = precompile_env(eni_versions=env_versions)
    return run_cvm_code(LITY, eni_setup(b"reverse", argument) + b"\xf5" + ENI_TAIL, env=env)


def test_the_opcode_runs_the_env_version() -> None:
    for versions, expected in (({}, BYTE_REVERSED), (V2, CODE_POINT_REVERSED)):
        computation = opcode_result(versions, TEXT)
        assert computation.is_success, computation.error
        out = computation.output
        assert out[0x180:0x1A0] == len(TEXT).to_bytes(32, "big")
        assert out[0x1A0 : 0x1A0 + len(TEXT)] == expected
    assert opcode_result({}, BAD).is_success
    assert isinstance(opcode_result(V2, BAD).error, EniFailure)


@pytest.mark.parametrize("profile", [CVM, LITY], ids=["cvm", "lity"])
def test_the_precompile_runs_the_env_version(profile: EvmProfile) -> None:
    data = eni_data("reverse", eni.bytes_from_text(json_args(TEXT)))
    for versions, expected in (({}, BYTE_REVERSED), (V2, CODE_POINT_REVERSED)):
        state = precompile_state(profile, precompile_env(eni_versions=versions))
        outcome = call_precompile(profile, pc.ENI_ADDRESS, data, state=state)
        assert outcome.success
        assert outcome.returndata[64 : 64 + len(TEXT)] == expected


# --- chains: blocks, validation, eth_call ----------------------------------------------------

OPCODE_TEXT, OPCODE_BAD = b"\x0e" * 19 + b"\x01", b"\x0e" * 19 + b"\x02"
PRECOMPILE_TEXT, PRECOMPILE_BAD = b"\x0e" * 19 + b"\x03", b"\x0e" * 19 + b"\x04"


def store_and_return(word_at: int, start: int, size: int) -> bytes:
    """SSTORE(NUMBER, MLOAD(word_at)); RETURN(start, size)."""
    return push(word_at) + b"\x51\x43\x55" + push(size) + push(start) + b"\xf3"


def opcode_contract(argument: bytes) -> bytes:
    """Lity code: ENI reverse(argument); stores the result's first word in slot NUMBER and
    returns the encoded result (mem[0x160]: 64, then the string's length word and bytes)."""
    return eni_setup(b"reverse", argument) + b"\xf5\x50" + store_and_return(0x1A0, 0x160, 0x60)


def precompile_contract(argument: bytes) -> bytes:
    """Code for either profile: CALL the ENI precompile with reverse(argument), revert if it
    failed, else store the string's first word in slot NUMBER and return the ABI result."""
    calldata = eni_data("reverse", eni.bytes_from_text(json_args(argument)))
    code = bytearray()
    for offset in range(0, len(calldata), 32):
        code += b"\x7f" + calldata[offset : offset + 32].ljust(32, b"\x00") + push(offset) + b"\x52"
    code += push(0) + push(0) + push(len(calldata)) + push(0) + push(0)  # out, in, value
    code += b"\x73" + pc.ENI_ADDRESS + b"\x5a\xf1"  # address, GAS, CALL
    success = b"\x3d\x60\x00\x60\x00\x3e" + store_and_return(0x40, 0, 0x60)  # RETURNDATACOPY
    jump_to = len(code) + 5 + len(success)  # past ISZERO PUSH2 JUMPI and the success path
    code += b"\x15\x61" + jump_to.to_bytes(2, "big") + b"\x57" + success
    code += b"\x5b" + push(0) + b"\x80\xfd"  # JUMPDEST; REVERT(0, 0)
    return bytes(code)


ProfileName = Literal["cvm", "lity"]
VIAS: dict[str, tuple[ProfileName, bytes, bytes]] = {
    "opcode-lity": ("lity", OPCODE_TEXT, OPCODE_BAD),
    "precompile-cvm": ("cvm", PRECOMPILE_TEXT, PRECOMPILE_BAD),
    "precompile-lity": ("lity", PRECOMPILE_TEXT, PRECOMPILE_BAD),
}
VIA = pytest.mark.parametrize("via", list(VIAS))


def genesis_for(profile: ProfileName) -> Genesis:
    genesis = devnet_genesis(
        validator_pub_keys=[VALIDATOR.public_key], genesis_time=NOW - 100, evm_profile=profile
    )
    contracts = {
        OPCODE_TEXT: opcode_contract(TEXT),
        OPCODE_BAD: opcode_contract(BAD),
        PRECOMPILE_TEXT: precompile_contract(TEXT),
        PRECOMPILE_BAD: precompile_contract(BAD),
    }
    alloc = dict(genesis.alloc)
    alloc.update(
        {address: AllocAccount(balance=0, code=code) for address, code in contracts.items()}
    )
    return replace(genesis, alloc=tuple(sorted(alloc.items())))


@dataclass
class EniDeployer:
    """Test-only module: enables `version` of `library` in the end_block of block `height`,
    as governance's end_block does for an approved deploy_libeni proposal."""

    library: str
    version: str
    height: int = 1
    name: str = "eni-deployer"
    kinds: frozenset[str] = frozenset()
    fee_recipient: bytes | None = None

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None:
        pass

    def end_block(self, ctx: BlockContext, storage: StateDB, fees: int) -> BlockOutcome:
        if ctx.height == self.height:
            enable_eni_version(storage, self.library, self.version)
        return BlockOutcome()


def new_chain(profile: ProfileName, *modules: EniDeployer) -> Chain:
    return Chain(MemoryDB(), genesis_for(profile), modules=ModuleSet(list(modules)))


def call_tx(chain: Chain, to: bytes, nonce: int) -> SignedTx:
    fields = {
        "to": to_checksum_address(to),
        "gas": 300_000,
        "gasPrice": GAS_PRICE,
        "nonce": nonce,
        "chainId": chain.chain_id,
    }
    raw = bytes(Account.sign_transaction(fields, SENDER.private_key).raw_transaction)
    return decode_transaction(raw, chain_id=chain.chain_id, block_gas_limit=chain.gas_limit)


def next_block(chain: Chain, txs: list[SignedTx]):
    ctx = chain.next_context(time=NOW + chain.head_number, coinbase=b"\x05" * 20)
    block = chain.build_block(ctx, txs)
    assert not block.skipped and not block.crashed
    chain.commit(block)
    return block


def stored(chain: Chain, contract: bytes, number: int) -> bytes:
    return chain.state_at().get_storage(contract, number).to_bytes(32, "big")


def word(text: bytes) -> bytes:
    return text[:32].ljust(32, b"\x00")


@VIA
def test_each_block_runs_the_version_in_force_at_its_height(via: str) -> None:
    profile, contract, _ = VIAS[via]
    chain = new_chain(profile, EniDeployer("reverse", CODE_POINT_REVERSE_VERSION, height=1))
    follower = new_chain(profile, EniDeployer("reverse", CODE_POINT_REVERSE_VERSION, height=1))
    for nonce in range(3):
        block = next_block(chain, [call_tx(chain, contract, nonce)])
        assert [r.state_root for r in block.result.receipts] == [b"\x01"]
        # A validator re-executes the block with the versions of its own state: same roots.
        checked = follower.execute_block(
            follower.context_of(block.header), block.header, block.result.transactions
        )
        follower.commit(checked)
    # Block 1 enabled v2.0.0 in its end_block: its own transactions still ran v1.3.7.
    assert stored(chain, contract, 1) == word(BYTE_REVERSED)
    assert stored(chain, contract, 2) == stored(chain, contract, 3) == word(CODE_POINT_REVERSED)
    assert chain.head.state_root == follower.head.state_root


@VIA
def test_without_a_deploy_the_default_version_runs(via: str) -> None:
    profile, contract, _ = VIAS[via]
    chain = new_chain(profile)
    for nonce in range(2):
        next_block(chain, [call_tx(chain, contract, nonce)])
    assert stored(chain, contract, 1) == stored(chain, contract, 2) == word(BYTE_REVERSED)
    assert chain.eni_versions_at(chain.head) == {}


@VIA
def test_eth_call_and_estimate_gas_use_the_versions_of_the_state_they_run_on(via: str) -> None:
    profile, contract, bad = VIAS[via]
    chain = new_chain(profile, EniDeployer("reverse", CODE_POINT_REVERSE_VERSION, height=1))
    genesis = chain.head
    next_block(chain, [])
    assert chain.eni_versions_at(chain.head) == V2
    assert chain.eni_versions_at(genesis) == {}

    def call(header, to: bytes):
        request = CallRequest(sender=SENDER.address, to=to)
        return run_call(chain.profile, chain.db, header.state_root, chain.env_of(header), request)

    def estimate(header, to: bytes) -> int:
        request = CallRequest(sender=SENDER.address, to=to)
        env = chain.env_of(header)
        return estimate_gas(chain.profile, chain.db, header.state_root, env, request)

    for header, expected in ((genesis, BYTE_REVERSED), (chain.head, CODE_POINT_REVERSED)):
        result = call(header, contract)
        assert result.success, result.error
        assert result.output[0x40 : 0x40 + len(TEXT)] == expected
    # Invalid UTF-8: fine for v1.3.7, refused by v2.0.0.
    assert call(genesis, bad).success and estimate(genesis, bad) > 21_000
    assert not call(chain.head, bad).success
    with pytest.raises(EstimateFailed):
        estimate(chain.head, bad)


@pytest.mark.parametrize(
    ("library", "version"), [("reverse", "v9.9.9"), ("no_such_function", "v1.0.0")]
)
def test_a_version_in_state_the_node_lacks_stops_block_execution_and_calls(
    library: str, version: str
) -> None:
    # enable_eni_version checks only the format; governance also checks availability, so
    # such a state means a broken invariant (or a database written by a newer release).
    chain = new_chain("lity", EniDeployer(library, version, height=1))
    next_block(chain, [])
    ctx = chain.next_context(time=NOW + 1, coinbase=b"\x05" * 20)
    with pytest.raises(InvariantViolation, match=f"after block 1 .*{library}.*{version}"):
        chain.build_block(ctx, [])
    with pytest.raises(InvariantViolation):
        chain.env_of(chain.head)
    assert chain.head_number == 1
