"""Methods only a devnet serves (evm_*, anvil_*, hardhat_*, and the like).

A dev API hands its methods to `install_devnet_only` with `enabled` (node.py: is this node a
devnet). On a devnet they are registered as they are; anywhere else each name is still known,
and answers -32601 "method not available: <name> is served by devnets only", so a client learns
why instead of a bare "method not found", and nothing runs (params are not even read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rpc.errors import MethodNotFound

__all__ = ["DevnetOnly", "install_devnet_only"]


class DevnetOnly(MethodNotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"method not available: {name} is served by devnets only")


def _unavailable(name: str, refusal: Callable[[str], Exception]) -> Callable[..., Any]:
    def unavailable(*_params: object) -> object:
        raise refusal(name)

    return unavailable


def install_devnet_only(
    dispatcher: Any,
    methods: Mapping[str, Callable[..., Any]],
    *,
    enabled: bool,
    refusal: Callable[[str], Exception] = DevnetOnly,
) -> None:
    """Register `methods` (name -> handler) when `enabled`, else their refusals (`refusal`
    of the name: a method that a config switch also serves names the switch)."""
    for name, handler in sorted(methods.items()):
        dispatcher.register(name, handler if enabled else _unavailable(name, refusal))
