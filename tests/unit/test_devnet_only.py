"""rpc/devnet_only.py: dev methods run on devnets and are refused by name elsewhere."""

from __future__ import annotations

import json
from typing import Any

import trio

from rpc import Dispatcher
from rpc.devnet_only import install_devnet_only


def ask(dispatcher: Dispatcher, method: str, params: list[Any]) -> dict[str, Any]:
    payload = json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    body = trio.run(dispatcher.handle, payload, None)
    assert body is not None
    answer: dict[str, Any] = json.loads(body)
    return answer


def test_devnet_methods_run_on_a_devnet_and_are_not_available_elsewhere() -> None:
    ran: list[object] = []
    methods = {"evm_mine": lambda timestamp=None: ran.append(timestamp) or "0x0"}
    devnet, node = Dispatcher(), Dispatcher()
    install_devnet_only(devnet, methods, enabled=True)
    install_devnet_only(node, methods, enabled=False)
    assert ask(devnet, "evm_mine", [5])["result"] == "0x0" and ran == [5]
    for params in ([], [5], ["garbage", {"x": 1}, None]):
        error = ask(node, "evm_mine", params)["error"]
        assert error == {
            "code": -32601,
            "message": "method not available: evm_mine is served by devnets only",
        }
    assert ran == [5]
