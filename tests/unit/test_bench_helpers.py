"""The benchmark scripts' pure helpers (benchmarks/peers.py, side_by_side.py's table): a signed
transaction decodes to the signer and fields we asked for, calldata is ABI-shaped, percentiles
and tables come out as documented. No speed is asserted here: benchmarks print numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import rlp
from coincurve import PrivateKey
from eth.vm.forks import PragueVM
from eth_hash.auto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import peers  # noqa: E402
import side_by_side  # noqa: E402


def test_sign_legacy_decodes_to_the_signer_and_the_fields() -> None:
    key = PrivateKey(keccak(b"bench key"))
    raw = peers.sign_legacy(
        key, chain_id=31337, nonce=7, gas_price=10**10, gas=60_000, to=b"\x11" * 20, value=5,
        data=b"\x01\x02",
    )  # fmt: skip
    tx = PragueVM.get_transaction_builder().decode(raw)
    assert tx.sender == peers.address_of(key)
    assert (tx.nonce, tx.gas_price, tx.gas, tx.to, tx.value, tx.data) == (
        7, 10**10, 60_000, b"\x11" * 20, 5, b"\x01\x02",
    )  # fmt: skip
    assert tx.chain_id == 31337
    assert peers.tx_hash(raw) == "0x" + tx.hash.hex()
    assert len(rlp.decode(raw)) == 9


def test_erc20_transfer_calldata() -> None:
    data = peers.erc20_transfer_data(b"\xab" * 20, 258)
    assert data[:4].hex() == "a9059cbb"
    assert data[4:36] == b"\0" * 12 + b"\xab" * 20
    assert int.from_bytes(data[36:], "big") == 258


def test_dev_key_0_is_the_mnemonic_account_every_devnet_funds() -> None:
    key = PrivateKey(bytes.fromhex(peers.DEV_KEY_0))
    assert peers.address_of(key).hex() == "f39fd6e51aad88f6f4ce6ab8827279cfffb92266"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert peers.percentile(values, 0.5) == 50.0
    assert peers.percentile(values, 0.99) == 99.0
    assert peers.percentile(values, 1.0) == 100.0
    assert peers.percentile([], 0.5) != peers.percentile([], 0.5)  # nan


def test_format_table_aligns_columns() -> None:
    text = peers.format_table(["", "a", "bb"], [["row one", "1", "22"], ["r2", "333", "4"]])
    lines = text.splitlines()
    assert lines[0] == "           a  bb"
    assert set(lines[1]) == {"-", " "}
    assert lines[2] == "row one    1  22"
    assert lines[3] == "r2       333   4"


def test_side_by_side_table_has_runs_and_ratios_of_medians() -> None:
    def result(commit_s: float | None) -> side_by_side.Result:
        return side_by_side.Result(
            txs=1000, sent=1000, committed=1000 if commit_s else 10, blocks=10, send_s=0.5,
            commit_s=commit_s, e2e_s=None, fetch_s=None, cpu_s=1.0,
        )  # fmt: skip

    results: dict[tuple[str, str], list[side_by_side.Result | str]] = {
        ("node", "transfers"): [result(0.5), result(1.0), result(0.25)],
        ("anvil", "transfers"): [result(1.0), "did not start", result(None)],
    }
    table = side_by_side.build_table(results, ["node", "anvil"], ["transfers"])
    row = next(line for line in table.splitlines() if "committed/s" in line)
    assert "2,000 / 1,000 / 4,000" in row
    assert "1,000 / - / -" in row
    assert row.endswith("2.00x")  # median 2,000 / median 1,000
