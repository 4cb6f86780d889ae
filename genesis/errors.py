"""The one exception the genesis package raises for bad input.

Every problem with a genesis file or a chain parameter is reported as a `GenesisError` that names
the offending field by a dotted path (`alloc.0xab…cd.balance`, `validators[1].pub_key`,
`params.max_vals`), so an operator preparing a genesis ceremony can fix the file without reading
our code. Two pseudo-fields exist: `<file>` (the file could not be read or is not JSON) and
`<genesis>` (the document as a whole, e.g. it is not a JSON object).

`GenesisError` is a `ValueError` so callers that treat "bad value" generically still catch it; it
deliberately does not depend on `cybermiles_node.errors` (packages depend on narrow interfaces, and
the composition root may wrap it).
"""

from __future__ import annotations


class GenesisError(ValueError):
    """A malformed or inconsistent genesis document; `field` says where, `message` says what."""

    def __init__(self, field: str, message: str) -> None:
        # args = (field, message) keeps the exception picklable (re-created as cls(*args)).
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ParamError(GenesisError):
    """A chain parameter has an unknown name or a value that does not parse for its type.

    Raised both for genesis `params` and for governance `change_param` values; `param` is the bare
    parameter name, `field` the genesis path `params.<name>`.
    """

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"params.{param}", message)
        self.param = param
        self.args = (param, message)
