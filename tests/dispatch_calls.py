"""`DispatcherCalls`: one JSON-RPC request at a time through an in-process `Dispatcher`, for unit
tests that drive methods the way a client does (a class with a `dispatcher` mixes it in)."""

from __future__ import annotations

import json
from typing import Any

import trio

from rpc import Dispatcher


class DispatcherCalls:
    dispatcher: Dispatcher

    def call(self, method: str, *params: Any) -> dict[str, Any]:
        """The whole answer to one request (id 1, positional params)."""
        payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        body = trio.run(self.dispatcher.handle, payload, None)
        assert body is not None
        answer: dict[str, Any] = json.loads(body)
        return answer

    def result(self, method: str, *params: Any) -> Any:
        answer = self.call(method, *params)
        assert "error" not in answer, answer
        return answer["result"]

    def error(self, method: str, *params: Any) -> dict[str, Any]:
        answer = self.call(method, *params)
        assert "error" in answer, answer
        error: dict[str, Any] = answer["error"]
        return error
