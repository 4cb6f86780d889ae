"""Clients' default fee paths pay at least `gas_price` on a cvm devnet, also right after a block
whose only transaction was free (DECISIONS "Fees for default clients"). ethers.js v6 here
(tests/js/default_fees.mjs); web3.py's default send is in test_transactions.py
(test_wallet_flow_web3_fills_gas_and_fees)."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from tests.e2e.harness import MIN_GAS_PRICE, REPO_ROOT, Devnet, q
from tests.e2e.js_clients import run_js

pytestmark = pytest.mark.e2e

ARTIFACT = REPO_ROOT / "contracts" / "build" / "TestToken.json"


def test_ethers_defaults_pay_at_least_gas_price_after_free_blocks(
    devnet: Devnet, accounts: list[LocalAccount]
) -> None:
    sender = accounts[9]
    out = run_js("default_fees.mjs", devnet.url, "0x" + bytes(sender.key).hex(), str(ARTIFACT))
    gas_price = int(out["gasPrice"])
    assert gas_price == MIN_GAS_PRICE == q(devnet.result("eth_gasPrice"))
    for free in out["free"]:
        # price 0 on purpose stays free, and it was the latest block when ethers asked
        assert int(free["paid"]) == 0 and free["latestAfter"] == free["block"]
    transfer, deploy = out["sent"]
    for sent in (transfer, deploy):
        assert sent["status"] == 1, sent
        assert sent["type"] == 2, sent  # ethers saw an EIP-1559 chain
        assert int(sent["paid"]) >= gas_price, sent
        assert int(sent["blockBaseFee"]) == gas_price, sent
        assert int(sent["maxFeePerGas"]) >= gas_price, sent
    assert out["deployedCode"] is True
