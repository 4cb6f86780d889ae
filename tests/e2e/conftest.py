"""Fixtures of the end-to-end tests: real devnet processes on free ports.

`devnet` is module-scoped (one process per test module: start-up is the expensive part) and
`devnet_factory` makes function-scoped devnets for tests that stop, kill or restart the node.
`cluster_factory` makes function-scoped multi-validator clusters (tests/e2e/cluster.py).
Every e2e module sets `pytestmark = pytest.mark.e2e`; a failing test's report gets the tail of
each running node's log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from tests.conformance import OpenRpcValidator
from tests.e2e.cluster import Cluster, active_clusters
from tests.e2e.harness import Devnet, active_devnets, dev_keys


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for net in active_devnets():
            report.sections.append((f"devnet {net.home}", net.log_tail()))
        for cluster in active_clusters():
            report.sections.append((f"cluster {cluster.home}", cluster.log_tail()))


@pytest.fixture(scope="module")
def validator() -> OpenRpcValidator:
    """A per-module validator, so each module can check its own conformance coverage."""
    return OpenRpcValidator()


@pytest.fixture(scope="module")
def devnet(
    tmp_path_factory: pytest.TempPathFactory, validator: OpenRpcValidator
) -> Iterator[Devnet]:
    base = tmp_path_factory.mktemp("devnet")
    net = Devnet(base / "home", validator=validator).start()
    try:
        yield net
    finally:
        if net.running:
            code = net.stop()
            assert code == 0, f"devnet exit code {code} on SIGTERM\n{net.log_tail()}"


@pytest.fixture
def devnet_factory(tmp_path: Path, validator: OpenRpcValidator) -> Iterator[Callable[..., Devnet]]:
    """`devnet_factory(name="node", start=True, **Devnet kwargs)` -> a devnet of this test."""
    made: list[Devnet] = []

    def make(name: str = "node", start: bool = True, **kwargs: Any) -> Devnet:
        net = Devnet(tmp_path / name, validator=validator, **kwargs)
        made.append(net)
        return net.start() if start else net

    yield make
    for net in made:
        net.kill()


@pytest.fixture(scope="session")
def accounts() -> list[LocalAccount]:
    """The 10 funded devnet accounts (mnemonic "test test ... junk")."""
    return dev_keys(10)


@pytest.fixture
def cluster_factory(
    tmp_path: Path, validator: OpenRpcValidator
) -> Iterator[Callable[..., Cluster]]:
    """`cluster_factory(validators=4, start=True, **Cluster kwargs)` -> a cluster of this test.

    Every cluster made is stopped after the test, passed or failed: supervisor, restarted nodes
    and any node process left over.
    """
    made: list[Cluster] = []

    def make(validators: int = 4, start: bool = True, **kwargs: Any) -> Cluster:
        cluster = Cluster(
            tmp_path / f"cluster{len(made)}", validators=validators, validator=validator, **kwargs
        )
        made.append(cluster)
        return cluster.start() if start else cluster

    yield make
    for cluster in made:
        cluster.stop()
