"""The CyberMiles `cmt_*` methods on a real devnet, as Travis clients call them."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Devnet

pytestmark = pytest.mark.e2e


def test_query_params_reads_the_parameters_in_force_at_a_height(devnet: Devnet) -> None:
    latest = devnet.rpc("cmt_queryParams", [], check=False)["result"]
    assert latest["height"] == devnet.block_number()
    params = latest["data"]
    assert params["gas_price"] == 2_000_000_000 and params["max_vals"] == 4
    assert params["self_staking_ratio"] == "1/10" and params["slash_enabled"] is False
    assert params["foundation_address"] == "0x7eff122b94897ea5b0e2a9abf47b86337fafebdc"
    assert devnet.rpc("cmt_queryParams", [0], check=False)["result"] == latest
    beyond = devnet.rpc("cmt_queryParams", [latest["height"] + 100], check=False)
    assert beyond["error"]["code"] == -32000
