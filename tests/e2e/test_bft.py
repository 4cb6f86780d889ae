"""A four-validator BFT devnet under faults, used only through JSON-RPC, the status endpoint,
metrics and signals, as operators and wallets would.

- transactions sent to any node are committed, and every node returns the same blocks;
- kill -9 one validator: the other three (more than 2/3 of the power) keep committing; restarted,
  it catches up through blocksync and signs commits again;
- stop two of four: the chain halts without forking (rounds keep failing) and resumes when one
  returns;
- a validator killed right after signing a vote, before the vote reached its WAL or any peer,
  never signs a conflicting vote after restart: no evidence of double signing appears on chain.

Every wait is a condition with a deadline; "the chain halts" is observed on /consensus_state:
the survivors have prevoted at one height and see only their own votes, a state no message from
them can get out of.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from cybermiles_node.operator.failpoints import ENV as FAILPOINT_ENV
from tests.e2e.cluster import Cluster
from tests.e2e.harness import dev_keys, fresh_account, send_signed, sign_transfer, wait_for

pytestmark = pytest.mark.e2e

COMMIT_TIMEOUT_S = 90.0


def block_hash(cluster: Cluster, i: int, height: int) -> str:
    answer = cluster.rpc(i, "eth_getBlockByNumber", [hex(height), False])
    assert answer.get("result"), answer
    return str(answer["result"]["hash"])


def assert_same_blocks(cluster: Cluster, nodes: Iterable[int], heights: Iterable[int]) -> None:
    nodes = list(nodes)
    for height in heights:
        hashes = {block_hash(cluster, i, height) for i in nodes}
        assert len(hashes) == 1, f"nodes {nodes} disagree on block {height}: {hashes}"


def commit_signers(cluster: Cluster, i: int, height: int) -> set[str]:
    """Validator addresses (lower-case hex) whose precommits are in block `height`'s commit."""
    reply = cluster._get(f"{cluster.nodes[i].status_url}/commit?height={height}").json()
    assert "result" in reply, reply
    signatures = reply["result"]["signed_header"]["commit"]["signatures"]
    return {sig["validator_address"].lower() for sig in signatures}


def evidence_in_blocks(cluster: Cluster, i: int, heights: Iterable[int]) -> list[object]:
    found: list[object] = []
    for height in heights:
        reply = cluster._get(f"{cluster.nodes[i].status_url}/block?height={height}").json()
        found.extend(reply["result"]["block"]["evidence"]["evidence"])
    return found


def round_state(cluster: Cluster, i: int) -> dict[str, Any]:
    reply = cluster._get(f"{cluster.nodes[i].status_url}/consensus_state").json()
    state: dict[str, Any] = reply["result"]["round_state"]
    return state


def stuck_without_quorum(cluster: Cluster, nodes: list[int]) -> int | None:
    """The height at which every node of `nodes` has prevoted and sees no more than the
    prevotes of `nodes` themselves: with the other validators gone, no message can ever
    complete a quorum there, so this state is a proof of halting, not a guess from time."""
    states = [round_state(cluster, i) for i in nodes]
    heights = {s["height"] for s in states}
    if len(heights) != 1:
        return None
    for s in states:
        seen, total = int(s["prevotes_power"]), int(s["total_power"])
        if s["step"] not in ("PREVOTE", "PREVOTE_WAIT") or seen != total * len(nodes) // 4:
            return None
    return int(heights.pop())


def wait_signed_by(cluster: Cluster, observer: int, signer: int, after: int) -> int:
    """A height above `after` whose commit carries node `signer`'s precommit."""
    address = cluster.nodes[signer].validator_address.lower()

    def signed() -> tuple[int] | None:
        top = cluster.height(observer)
        for height in range(after + 1, top + 1):
            if address in commit_signers(cluster, observer, height):
                return (height,)
        return None

    return wait_for(
        signed, timeout=COMMIT_TIMEOUT_S, what=f"a commit signed by node{signer}", interval=0.3
    )[0]


def test_transactions_sent_to_any_node_are_committed_by_all(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(validators=4)
    senders = dev_keys(4)
    recipients = [fresh_account(100 + i).address for i in range(4)]
    sent = [
        send_signed(cluster.web3(i), sign_transfer(senders[i], 0, recipients[i], 10**18 + i))
        for i in range(4)
    ]
    included = [
        cluster.web3(0).eth.wait_for_transaction_receipt(h, timeout=COMMIT_TIMEOUT_S) for h in sent
    ]
    assert all(r["status"] == 1 for r in included)
    top = max(r["blockNumber"] for r in included)
    for i in range(4):
        cluster.wait_height(i, top, timeout=COMMIT_TIMEOUT_S)
        for recipient, value in zip(recipients, range(4), strict=True):
            assert cluster.web3(i).eth.get_balance(recipient) == 10**18 + value
    assert_same_blocks(cluster, range(4), range(1, top + 1))
    # Every block after the first carries the commit of its parent, signed by > 2/3 of 4.
    assert len(commit_signers(cluster, 0, top)) >= 3
    for i in range(4):
        assert cluster.rpc(i, "net_peerCount")["result"] == "0x3"
        assert cluster.rpc(i, "eth_syncing")["result"] is False


def test_killed_validator_is_not_needed_and_catches_up_after_restart(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(validators=4)
    cluster.wait_height(0, 2, timeout=COMMIT_TIMEOUT_S)
    cluster.kill(3, signal.SIGKILL)
    target = cluster.height(0) + 3
    for i in range(3):  # 3 of 4 equal-power validators hold more than 2/3
        cluster.wait_height(i, target, timeout=COMMIT_TIMEOUT_S)

    cluster.restart(3)
    caught_up = cluster.wait_height(3, cluster.height(0), timeout=COMMIT_TIMEOUT_S)
    assert_same_blocks(cluster, range(4), range(1, caught_up + 1))
    wait_signed_by(cluster, observer=0, signer=3, after=caught_up)


def test_two_of_four_down_halts_without_fork_and_resumes(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(validators=4)
    cluster.wait_height(0, 2, timeout=COMMIT_TIMEOUT_S)
    cluster.kill(2, signal.SIGKILL)
    cluster.kill(3, signal.SIGKILL)
    # At most the block already in flight can still be decided; then both prevote and wait.
    halted = wait_for(
        lambda: stuck_without_quorum(cluster, [0, 1]),
        timeout=COMMIT_TIMEOUT_S,
        what="nodes 0 and 1 to prevote at one height without a quorum",
        interval=0.2,
    )
    assert cluster.height(0) == cluster.height(1) == halted - 1

    cluster.restart(2)
    for i in range(3):
        cluster.wait_height(i, halted + 1, timeout=COMMIT_TIMEOUT_S)
    assert_same_blocks(cluster, range(3), range(1, halted + 2))


def test_validator_killed_between_signing_and_broadcasting_never_double_signs(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(validators=4)
    cluster.wait_height(0, 2, timeout=COMMIT_TIMEOUT_S)
    cluster.kill(3, signal.SIGKILL)
    crash_at = cluster.height(0) + 2
    crashing = cluster.restart(3, env={FAILPOINT_ENV: f"crash-after-sign:{crash_at}"}, wait=False)
    # The node syncs, signs its first vote at crash_at durably, and dies before sending it.
    assert crashing.wait(timeout=COMMIT_TIMEOUT_S) == 70
    assert "failpoint crash-after-sign" in cluster.nodes[3].log_path.read_text()

    cluster.restart(3)
    rejoined = wait_signed_by(cluster, observer=0, signer=3, after=crash_at)
    for i in range(4):
        cluster.wait_height(i, rejoined, timeout=COMMIT_TIMEOUT_S)
    assert_same_blocks(cluster, range(4), range(1, rejoined + 1))
    # Evidence of a double vote would be gossiped and included within a few blocks.
    final = cluster.wait_height(0, rejoined + 3, timeout=COMMIT_TIMEOUT_S)
    assert evidence_in_blocks(cluster, 0, range(2, final + 1)) == []


def test_equivocating_validator_is_caught_and_the_evidence_is_committed(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(validators=4)
    cluster.wait_height(0, 2, timeout=COMMIT_TIMEOUT_S)
    cluster.kill(3, signal.SIGKILL)
    from_height = cluster.height(0) + 2
    cluster.restart(3, env={FAILPOINT_ENV: f"equivocate:{from_height}"})
    address = cluster.nodes[3].validator_address.upper()

    def evidence_block() -> tuple[int, dict[str, Any]] | None:
        for height in range(from_height, cluster.height(0) + 1):
            for ev in evidence_in_blocks(cluster, 0, [height]):
                assert isinstance(ev, dict)
                return height, ev
        return None

    included_at, ev = wait_for(
        evidence_block,
        timeout=COMMIT_TIMEOUT_S,
        what="double-vote evidence in a block",
        interval=0.3,
    )
    assert ev["validator_address"] == address
    assert int(ev["height"]) >= from_height
    # Included once: later blocks do not carry it again, and every node agrees on the chain.
    top = cluster.wait_height(0, included_at + 3, timeout=COMMIT_TIMEOUT_S)
    hashes = [e["hash"] for e in evidence_in_blocks(cluster, 0, range(from_height, top + 1))]  # type: ignore[index]
    assert len(hashes) == len(set(hashes))
    for i in range(3):
        cluster.wait_height(i, top, timeout=COMMIT_TIMEOUT_S)
    assert_same_blocks(cluster, range(3), range(1, top + 1))
