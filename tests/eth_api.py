"""`eth_api(app, ...)`: the node's EthApi over an in-process ChainApp with config.toml's RPC
defaults, for unit tests that call methods through a Dispatcher (no HTTP, no subscriptions)."""

from __future__ import annotations

from collections.abc import Callable

from cybermiles_node.application.app import ChainApp
from cybermiles_node.operator.config import RpcConfig
from rpc import FilterRegistry, SubscriptionHub
from rpc.eth import EthApi
from rpc.execution import EvmWorker

RPC_DEFAULTS = RpcConfig()


def eth_api(
    app: ChainApp,
    *,
    client_version: str = "cybermiles/test",
    evm_timeout: float = RPC_DEFAULTS.evm_timeout,
    max_response_bytes: int = RPC_DEFAULTS.max_response_bytes,
    accounts: Callable[[], list[bytes]] = list,
    pending_nonce_compat: bool = False,
) -> EthApi:
    return EthApi(
        app,
        filters=FilterRegistry(clock=lambda: 0.0),
        hub=SubscriptionHub(),
        client_version=client_version,
        evm=EvmWorker(timeout=evm_timeout),
        gas_cap=RPC_DEFAULTS.gas_cap,
        max_response_bytes=max_response_bytes,
        accounts=accounts,
        pending_nonce_compat=pending_nonce_compat,
    )
