"""Ethereum JSON-RPC conformance checks against the execution-apis OpenRPC document.

Usage::

    validator = get_validator()                  # loaded once per process (cached)
    validator.validate_result("eth_chainId", "0x4d2")
    check_raw_response("eth_blockNumber", response_json, validator)   # raw HTTP tests

    w3 = Web3(ConformingHTTPProvider(url, validator=validator))   # or, for any w3:
    install_conformance_check(w3, validator)

    assert validator.checked["eth_getBlockByNumber"] > 0

Methods absent from the spec (``web3_*``, ``net_listening``, ``net_peerCount``,
``eth_subscribe``, ``cmt_*`` ...) are skipped and counted in ``validator.skipped``.

Deviation from strict JSON Schema: ``oneOf`` is evaluated as ``anyOf``. The spec's
``FilterResults`` is ``oneOf`` [array of hashes, array of logs], which an empty array ``[]``
matches twice (so every empty ``eth_getLogs`` answer would be "invalid"). All other ``oneOf``
uses in the spec have disjoint branches, where the two keywords agree.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from web3 import HTTPProvider, Web3
from web3.middleware.base import Web3Middleware
from web3.types import RPCEndpoint, RPCResponse

from tests.shared import SHARED

__all__ = [
    "DEFAULT_SPEC_PATH",
    "SPEC_ENV_VAR",
    "ConformanceError",
    "ConformingHTTPProvider",
    "OpenRpcValidator",
    "check_raw_response",
    "conformance_middleware",
    "get_validator",
    "install_conformance_check",
]

SPEC_ENV_VAR = "CYBERMILES_OPENRPC"
DEFAULT_SPEC_PATH = SHARED / "conformance" / "openrpc.json"
_SPEC_URI = "urn:ethereum:execution-apis:openrpc"
_EXCERPT_CHARS = 600


class ConformanceError(AssertionError):
    """A JSON-RPC request or response does not match the OpenRPC specification."""

    def __init__(self, method: str, message: str, excerpt: str) -> None:
        self.method = method
        self.message = message
        self.excerpt = excerpt
        super().__init__(f"{method}: {message}\n  value: {excerpt}")


def _excerpt(value: object) -> str:
    try:
        text = json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > _EXCERPT_CHARS:
        text = text[:_EXCERPT_CHARS] + f"... ({len(text)} chars)"
    return text


def _one_of_as_any_of(
    validator: Any, one_of: Sequence[Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    errors: list[ValidationError] = []
    for index, subschema in enumerate(one_of):
        branch_errors = list(validator.descend(instance, subschema, schema_path=index))
        if not branch_errors:
            return
        errors.extend(branch_errors)
    yield ValidationError(
        f"{instance!r} is not valid under any of the given schemas", context=errors
    )


# Draft 2020-12 with the lenient ``oneOf`` described in the module docstring.
_SpecValidator: type[Draft202012Validator] = jsonschema.validators.extend(
    Draft202012Validator, validators={"oneOf": _one_of_as_any_of}
)


def _branch_rejects_instance(errors: list[ValidationError]) -> bool:
    """True if a oneOf/anyOf branch fails on the instance's JSON type or on its ``type`` tag."""
    for error in errors:
        rel = list(error.relative_path)
        if error.validator == "type" and not rel:
            return True
        if error.validator in ("pattern", "const", "enum") and rel == ["type"]:
            return True
    return False


def _leaf_errors(error: ValidationError) -> list[ValidationError]:
    """Descend oneOf/anyOf contexts into the branch the instance most plausibly meant."""
    if not error.context:
        return [error]
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        key = sub.relative_schema_path[0] if sub.relative_schema_path else None
        branches.setdefault(key, []).append(sub)

    def score(errors: list[ValidationError]) -> tuple[bool, int, int, int]:
        return (
            not _branch_rejects_instance(errors),
            -sum(e.validator == "type" for e in errors),
            -len(errors),
            max(len(e.path) for e in errors),
        )

    chosen = max(branches.values(), key=score)
    leaves: list[ValidationError] = []
    for sub in chosen:
        leaves.extend(_leaf_errors(sub))
    return leaves


def _describe(errors: Sequence[ValidationError], limit: int = 3) -> str:
    """``<json path>: <message>`` for the most specific errors (deepest first)."""
    leaves: list[ValidationError] = []
    for error in errors:
        leaves.extend(_leaf_errors(error))
    leaves.sort(key=lambda e: (-len(e.path), [str(p) for p in e.path]))
    parts = []
    for leaf in leaves[:limit]:
        message = leaf.message if len(leaf.message) <= 200 else leaf.message[:200] + "..."
        parts.append(f"{leaf.json_path}: {message}")
    if len(leaves) > limit:
        parts.append(f"(+{len(leaves) - limit} more)")
    return "; ".join(parts)


class OpenRpcValidator:
    """Validates JSON-RPC results/params against the execution-apis OpenRPC document."""

    def __init__(self, spec_path: str | os.PathLike[str] | None = None) -> None:
        if spec_path is None:
            spec_path = os.environ.get(SPEC_ENV_VAR) or DEFAULT_SPEC_PATH
        self.spec_path = Path(spec_path)
        with self.spec_path.open(encoding="utf-8") as handle:
            self.document: dict[str, Any] = json.load(handle)
        resource: Resource[Any] = DRAFT202012.create_resource(self.document)
        self.registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)

        self._results: dict[str, Draft202012Validator] = {}
        self._params: dict[str, list[tuple[str, bool, Draft202012Validator]]] = {}
        for index, method in enumerate(self.document["methods"]):
            name = method["name"]
            base = f"{_SPEC_URI}#/methods/{index}"
            if "result" in method:
                self._results[name] = self._compile(f"{base}/result/schema")
            self._params[name] = [
                (
                    param["name"],
                    bool(param.get("required", False)),
                    self._compile(f"{base}/params/{pindex}/schema"),
                )
                for pindex, param in enumerate(method.get("params", []))
            ]

        #: methods whose results were validated (count per method)
        self.checked: Counter[str] = Counter()
        #: methods seen but not in the spec (count per method)
        self.skipped: Counter[str] = Counter()
        #: violations recorded when a hook runs with ``raise_on_error=False``
        self.violations: list[ConformanceError] = []

    def _compile(self, ref: str) -> Draft202012Validator:
        return _SpecValidator({"$ref": ref}, registry=self.registry)

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self._results)

    def knows(self, method: str) -> bool:
        return method in self._results

    def result_errors(self, method: str, result: object) -> list[ValidationError]:
        """All schema errors for ``result`` (empty if valid or the method is unknown)."""
        validator = self._results.get(method)
        if validator is None:
            return []
        return list(validator.iter_errors(result))

    def validate_result(self, method: str, result: object) -> None:
        """Raise :class:`ConformanceError` if ``result`` violates the spec for ``method``."""
        validator = self._results.get(method)
        if validator is None:
            self.skipped[method] += 1
            return
        self.checked[method] += 1
        errors = list(validator.iter_errors(result))
        if errors:
            raise ConformanceError(method, _describe(errors), _excerpt(result))

    def validate_params(self, method: str, params: object) -> None:
        """Validate request params (positional list or by-name object); unknown methods skip."""
        spec = self._params.get(method)
        if spec is None:
            return
        if params is None:
            params = []
        if isinstance(params, Mapping):
            by_name = dict(params)
            unknown = sorted(set(by_name) - {name for name, _, _ in spec})
            if unknown:
                raise ConformanceError(method, f"unknown params {unknown}", _excerpt(params))
            values = [
                (name, required, v, by_name.get(name, _MISSING)) for name, required, v in spec
            ]
        elif isinstance(params, (list, tuple)):
            if len(params) > len(spec):
                raise ConformanceError(
                    method,
                    f"too many params: got {len(params)}, spec allows {len(spec)}",
                    _excerpt(params),
                )
            values = [
                (name, required, v, params[i] if i < len(params) else _MISSING)
                for i, (name, required, v) in enumerate(spec)
            ]
        else:
            raise ConformanceError(method, "params must be an array or object", _excerpt(params))
        for position, (name, required, validator, value) in enumerate(values):
            if value is _MISSING:
                if required:
                    raise ConformanceError(
                        method, f"missing required param #{position} {name!r}", _excerpt(params)
                    )
                continue
            errors = list(validator.iter_errors(value))
            if errors:
                raise ConformanceError(
                    method, f"param #{position} {name!r}: {_describe(errors)}", _excerpt(value)
                )

    def validate_response(self, method: str, response: object) -> None:
        """Check a full JSON-RPC 2.0 response object (envelope, then ``result``)."""
        if not isinstance(response, Mapping):
            raise ConformanceError(method, "response is not a JSON object", _excerpt(response))
        if response.get("jsonrpc") != "2.0":
            raise ConformanceError(method, 'response lacks "jsonrpc": "2.0"', _excerpt(response))
        if "id" not in response:
            raise ConformanceError(method, 'response lacks "id"', _excerpt(response))
        has_result, has_error = "result" in response, "error" in response
        if has_result == has_error:
            raise ConformanceError(
                method, 'response must have exactly one of "result" / "error"', _excerpt(response)
            )
        if has_error:
            error = response["error"]
            if not (
                isinstance(error, Mapping)
                and isinstance(error.get("code"), int)
                and not isinstance(error.get("code"), bool)
                and isinstance(error.get("message"), str)
            ):
                raise ConformanceError(
                    method, "error must be {code: int, message: str, data?}", _excerpt(response)
                )
            return
        self.validate_result(method, response["result"])


class _Missing:
    pass


_MISSING: Any = _Missing()


@functools.lru_cache(maxsize=4)
def _cached_validator(path: str) -> OpenRpcValidator:
    return OpenRpcValidator(path)


def get_validator(spec_path: str | os.PathLike[str] | None = None) -> OpenRpcValidator:
    """Process-wide validator (the spec is parsed once per path)."""
    if spec_path is None:
        spec_path = os.environ.get(SPEC_ENV_VAR) or DEFAULT_SPEC_PATH
    return _cached_validator(str(Path(spec_path).resolve()))


def check_raw_response(
    method: str, response_json: object, validator: OpenRpcValidator | None = None
) -> None:
    """Validate one raw JSON-RPC response (dict) for ``method``; for raw-HTTP tests."""
    (validator or get_validator()).validate_response(method, response_json)


def _handle(
    validator: OpenRpcValidator, method: str, response: object, raise_on_error: bool
) -> None:
    try:
        validator.validate_response(method, response)
    except ConformanceError as exc:
        if raise_on_error:
            raise
        validator.violations.append(exc)


class ConformingHTTPProvider(HTTPProvider):
    """HTTPProvider that validates every raw response before any middleware/formatter sees it."""

    def __init__(
        self,
        endpoint_uri: str | None = None,
        *args: Any,
        validator: OpenRpcValidator | None = None,
        raise_on_error: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(endpoint_uri, *args, **kwargs)
        self.validator = validator or get_validator()
        self.raise_on_error = raise_on_error

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        response = super().make_request(method, params)
        _handle(self.validator, method, response, self.raise_on_error)
        return response

    def make_batch_request(
        self, batch_requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        responses = super().make_batch_request(batch_requests)
        if isinstance(responses, list):
            for (method, _), response in zip(batch_requests, responses, strict=False):
                _handle(self.validator, method, response, self.raise_on_error)
        return responses


def conformance_middleware(
    validator: OpenRpcValidator, raise_on_error: bool = True
) -> type[Web3Middleware]:
    """A web3 middleware class bound to ``validator`` (handles single and batch requests)."""

    class ConformanceMiddleware(Web3Middleware):
        def response_processor(self, method: RPCEndpoint, response: RPCResponse) -> Any:
            _handle(validator, method, response, raise_on_error)
            return response

    return ConformanceMiddleware


def install_conformance_check(
    w3: Web3, validator: OpenRpcValidator | None = None, raise_on_error: bool = True
) -> None:
    """Validate the raw JSON of every response ``w3`` receives against the spec.

    Adds a middleware at the innermost onion layer, i.e. directly around the provider: it sees
    the decoded JSON-RPC response before any other middleware (attrdict, validation, ...) and
    before web3's result formatters, which run after the middleware stack. Works with any sync
    provider; batch responses are checked per entry.
    """
    validator = validator or get_validator()
    name = "openrpc_conformance"
    if name in w3.middleware_onion:
        w3.middleware_onion.remove(name)
    w3.middleware_onion.inject(
        conformance_middleware(validator, raise_on_error), name=name, layer=0
    )
