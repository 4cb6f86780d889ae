"""The built-in explorer in headless Chromium against a real devnet (tests/js/explorer_check.mjs).

The test makes the chain's content itself (an ERC-20 deploy and transfer, a staking
transaction), hands the browser script a pre-signed transfer to submit once the page shows the
live head, and checks what the page showed against the chain: the head moved without a reload,
the search found the transfer, its Transfer log is decoded, the block lists it, the sender's
balance is exact, the staking transaction shows its envelope and events, the validators page
lists both candidates, nothing was loaded from anywhere but the node, and the screenshots exist.
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest
import requests

from tests.e2e.harness import (
    CHAIN_ID,
    GWEI,
    MIN_GAS_PRICE,
    Devnet,
    deploy_token,
    dev_keys,
    fresh_account,
    send_signed,
    sign_transfer,
    staking_raw,
    token_contract,
    wait_for,
    wait_receipt,
)
from tests.e2e.js_clients import JS_DIR, run_js

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
TOKEN_AMOUNT = 1234 * 10**18 + 5  # an exact integer part and a last-digit fraction
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cmt_text(wei: int) -> str:
    """How the page writes an amount of wei: grouped CMT with the exact fraction."""
    whole, fraction = divmod(wei, 10**18)
    digits = f"{fraction:018d}".rstrip("0")
    return f"{whole:,}" + (f".{digits}" if digits else "") + " CMT"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_explorer_follows_a_transaction_in_chromium(devnet: Devnet, tmp_path: Path) -> None:
    assert CHROMIUM.exists(), "Debian's chromium is missing: `make test` installs it (apt-get)"
    assert (JS_DIR / "node_modules" / "playwright-core").is_dir(), (
        f"playwright-core is not installed: run `make test` or `cd {JS_DIR} && npm ci`"
    )
    w3 = devnet.w3()
    owner, live_sender, candidate = dev_keys(3)
    recipient = fresh_account(1201).address

    token_address, _ = deploy_token(w3, owner, 10**24)
    token = token_contract(w3, token_address)
    transfer = token.functions.transfer(recipient, TOKEN_AMOUNT).build_transaction(
        {
            "from": owner.address,
            "nonce": w3.eth.get_transaction_count(owner.address, "pending"),
            "chainId": CHAIN_ID,
            "maxFeePerGas": MIN_GAS_PRICE + GWEI,
            "maxPriorityFeePerGas": MIN_GAS_PRICE,
        }
    )
    receipt = wait_receipt(w3, send_signed(w3, owner.sign_transaction(transfer)))
    assert receipt["status"] == 1
    tx_hash = receipt["transactionHash"].to_0x_hex()

    declare = staking_raw(
        candidate,
        w3.eth.get_transaction_count(candidate.address, "pending"),
        "stake/declareCandidacy",
        {
            "pub_key": base64.b64encode(bytes(range(1, 33))).decode(),
            "max_amount": str(20_000 * 10**18),
            "comp_rate": "1/5",
            "description": {"name": "explorer-e2e"},
        },
    )
    staking_hash = w3.eth.send_raw_transaction(declare).to_0x_hex()
    assert wait_receipt(w3, staking_hash)["status"] == 1

    live = sign_transfer(
        live_sender, w3.eth.get_transaction_count(live_sender.address, "pending"), recipient, 1
    )
    screenshot = tmp_path / "explorer.png"
    seen = run_js(
        "explorer_check.mjs",
        devnet.url,
        tx_hash,
        str(screenshot),
        "0x" + bytes(live.raw_transaction).hex(),
        staking_hash,
    )

    assert seen["errors"] == [] and seen["external"] == [], seen
    # The live head moved past the submitted transaction's block, in the same document.
    live_receipt = wait_receipt(w3, live.hash)
    assert seen["liveTx"] == live.hash.to_0x_hex()
    assert seen["initialHead"] < seen["liveHead"] and seen["sameDocument"] is True
    assert seen["liveHead"] >= live_receipt["blockNumber"] > seen["initialHead"]
    assert seen["liveHeadText"] == f"#{seen['liveHead']:,}"
    assert seen["homeBlocks"] >= 1

    sender = owner.address.lower()
    assert seen["tx"]["status"] == "success"
    assert (seen["tx"]["from"], seen["tx"]["to"]) == (sender, token_address.lower())
    assert seen["tx"]["block"] == f"#{receipt['blockNumber']:,}"
    assert seen["tx"]["gasUsed"] == f"{receipt['gasUsed']:,}"
    assert seen["tx"]["effectiveGasPrice"].endswith(" gwei")
    assert seen["transfer"] == {
        "count": 1,
        "from": sender,
        "to": recipient.lower(),
        "value": "1,234.000000000000000005 TT",
        "raw": str(TOKEN_AMOUNT),
    }

    block = w3.eth.get_block(receipt["blockNumber"])
    assert seen["block"]["number"] == str(receipt["blockNumber"])
    assert seen["block"]["hash"] == block["hash"].to_0x_hex()
    assert seen["block"]["txs"] == [t.to_0x_hex() for t in block["transactions"]]

    balance = w3.eth.get_balance(owner.address)  # owner sent nothing since the transfer
    assert seen["account"]["address"] == sender
    assert seen["account"]["balanceWei"] == str(balance)
    assert seen["account"]["balance"] == cmt_text(balance)
    assert seen["account"]["nonce"] == str(w3.eth.get_transaction_count(owner.address))
    assert tx_hash in seen["account"]["recentTxs"]

    staking = seen["staking"]
    assert staking["kind"] == "stake/declareCandidacy"
    assert staking["envelope"]["type"] == "stake/declareCandidacy"
    assert staking["envelope"]["data"]["description"] == {"name": "explorer-e2e"}
    assert staking["code"] == "0 (ok)"
    assert staking["events"] == ["stake/fee_paid", "stake/candidate_declared", "stake/staked"]
    owners = {v["owner"] for v in seen["validators"]}
    assert {candidate.address.lower(), dev_keys(1)[0].address.lower()} <= owners

    for path in (screenshot, tmp_path / "explorer-account.png"):
        width, height = png_size(path)
        assert width >= 1000 and height >= 600, (path, width, height)
        assert path.stat().st_size > 20_000, f"{path} looks empty ({path.stat().st_size} bytes)"


def test_a_devnet_serves_the_explorer_files(devnet: Devnet) -> None:
    """The installed files on a real devnet node: types, the redirect, JSON-RPC on any path;
    the start banner prints the URL."""
    base = devnet.url
    banner = f"Explorer:  {base}/explorer/"
    wait_for(lambda: banner in devnet.log_path.read_text(), timeout=30, what=banner)
    for name, kind in (("", "text/html"), ("app.js", "text/javascript"), ("style.css", "text/css")):
        response = requests.get(f"{base}/explorer/{name}", timeout=10)
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(kind)
        assert "'self'" in response.headers["content-security-policy"]
    redirect = requests.get(f"{base}/explorer", allow_redirects=False, timeout=10)
    assert (redirect.status_code, redirect.headers["location"]) == (301, "/explorer/")
    assert requests.get(f"{base}/explorer/nope.js", timeout=10).status_code == 404
    answer = requests.post(
        f"{base}/explorer/", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=10
    ).json()
    assert answer["result"] == hex(CHAIN_ID)
