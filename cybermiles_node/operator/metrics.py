"""Prometheus metrics: a small registry of our own and the node's declared metrics.

- `Registry` holds metric families and renders the text exposition format 0.0.4 (`# HELP` and
  `# TYPE` lines, then one sample a line), families sorted by name and samples by label values,
  so the same state always renders the same text.
- `Gauge` (`set`, `inc`, `dec`), `Counter` (`inc`, never down) and `Histogram` (`observe`, fixed
  buckets) take their label values as keyword arguments; a family declared without labels has one
  sample that exists (at 0) from the start, as Prometheus client libraries do.
- `NodeMetrics` declares every metric the node exports; the node updates its fields.
- `MetricsApp` serves `GET /metrics` (run it with `rpc.server.serve_asgi`).

The metrics are updated from the node's trio thread only, so there is no locking. No client
library is used: the format is a few lines, and a dependency would be larger than this module.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Final

from rpc.server import GetApp, HttpResponse

__all__ = [
    "BLOCK_INTERVAL_BUCKETS",
    "CONTENT_TYPE",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricsApp",
    "NodeMetrics",
    "Registry",
]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
BLOCK_INTERVAL_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)

LabelValues = tuple[str, ...]


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # "5", not "5.0": both parse, this one reads better
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels_text(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


class _Family:
    """A metric name with its help text, label names and one value (or more) per label set."""

    kind: str = ""

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(labels)

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.label_names):
            raise ValueError(
                f"{self.name} takes labels {sorted(self.label_names)}, got {sorted(labels)}"
            )
        return tuple(str(labels[name]) for name in self.label_names)

    def samples(self) -> Iterator[tuple[str, str, str]]:
        """(sample name, `{labels}` text, formatted value), in deterministic order."""
        raise NotImplementedError

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        lines.extend(f"{name}{labels} {value}" for name, labels, value in self.samples())
        return lines


class _Scalar(_Family):
    """A family of plain numbers: the shared body of gauges and counters."""

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        # An unlabelled metric exists from the start; labelled ones appear when first touched.
        self._values: dict[LabelValues, float] = {} if labels else {(): 0.0}

    def _add(self, amount: float, labels: dict[str, str]) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def samples(self) -> Iterator[tuple[str, str, str]]:
        for key in sorted(self._values):
            yield self.name, _labels_text(self.label_names, key), _format_value(self._values[key])


class Gauge(_Scalar):
    """A value that goes up and down (height, peers, mempool size)."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        self._values[self._key(labels)] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self._add(amount, labels)

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self._add(-amount, labels)


class Counter(_Scalar):
    """A count that only goes up (until the process restarts); its name ends in `_total`."""

    kind = "counter"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter cannot go down ({amount})")
        self._add(amount, labels)


class _HistogramState:
    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets  # per bucket, not cumulative; summed when rendered
        self.sum = 0.0
        self.count = 0


class Histogram(_Family):
    """Observations counted in fixed buckets (upper bounds, `le`), with their sum and count."""

    kind = "histogram"

    def __init__(
        self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> None:
        if "le" in labels:
            raise ValueError("'le' is reserved for histogram buckets")
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct finite numbers, got {buckets}")
        super().__init__(name, help, labels)
        self.bounds = (*bounds, math.inf)
        self._states: dict[LabelValues, _HistogramState] = (
            {} if labels else {(): _HistogramState(len(self.bounds))}
        )

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _HistogramState(len(self.bounds))
        # The first bucket whose bound is >= value; the last bound is +Inf, so one always is.
        state.counts[bisect_left(self.bounds, value)] += 1
        state.sum += value
        state.count += 1

    def count(self, **labels: str) -> int:
        state = self._states.get(self._key(labels))
        return state.count if state else 0

    def samples(self) -> Iterator[tuple[str, str, str]]:
        bucket_names = (*self.label_names, "le")
        for key in sorted(self._states):
            state = self._states[key]
            labels = _labels_text(self.label_names, key)
            cumulative = 0
            for bound, count in zip(self.bounds, state.counts, strict=True):
                cumulative += count
                le = _labels_text(bucket_names, (*key, _format_value(bound)))
                yield f"{self.name}_bucket", le, str(cumulative)
            yield f"{self.name}_sum", labels, _format_value(state.sum)
            yield f"{self.name}_count", labels, str(state.count)


class Registry:
    """The metric families of one process, rendered together."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def _add(self, family: _Family) -> None:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family

    def gauge(self, name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
        gauge = Gauge(name, help, labels)
        self._add(gauge)
        return gauge

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        counter = Counter(name, help, labels)
        self._add(counter)
        return counter

    def histogram(
        self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> Histogram:
        histogram = Histogram(name, help, buckets, labels)
        self._add(histogram)
        return histogram

    def expose(self) -> str:
        """The text exposition format 0.0.4 of every family, sorted by name."""
        lines = [line for name in sorted(self._families) for line in self._families[name].render()]
        return "\n".join(lines) + "\n"


class NodeMetrics:
    """Every metric the node exports, declared once; the node sets and increments the fields."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else Registry()
        r = self.registry
        self.consensus_height = r.gauge(
            "cybermiles_consensus_height", "Height of the last committed block."
        )
        self.consensus_round = r.gauge(
            "cybermiles_consensus_round", "Round the consensus engine is in at the current height."
        )
        self.consensus_rounds_total = r.counter(
            "cybermiles_consensus_rounds_total", "Consensus rounds entered, all heights together."
        )
        self.consensus_validators = r.gauge(
            "cybermiles_consensus_validators", "Validators in the current validator set."
        )
        self.consensus_block_interval_seconds = r.histogram(
            "cybermiles_consensus_block_interval_seconds",
            "Seconds between consecutive blocks committed by this node (wall clock).",
            BLOCK_INTERVAL_BUCKETS,
        )
        self.consensus_committed_txs_total = r.counter(
            "cybermiles_consensus_committed_txs_total", "Transactions in committed blocks."
        )
        self.p2p_peers = r.gauge("cybermiles_p2p_peers", "Connected peers.")
        self.p2p_bans_total = r.counter(
            "cybermiles_p2p_bans_total", "Peers banned for misbehaving."
        )
        self.mempool_size = r.gauge("cybermiles_mempool_size", "Transactions in the mempool.")
        self.mempool_rejected_total = r.counter(
            "cybermiles_mempool_rejected_total", "Transactions the mempool refused to admit."
        )
        self.rpc_requests_total = r.counter(
            "cybermiles_rpc_requests_total", "JSON-RPC requests served (a batch counts once)."
        )


class MetricsApp(GetApp):
    """ASGI app: GET /metrics renders the registry; other paths are 404."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def get(self, path: str, query: str) -> HttpResponse:
        if path != "/metrics":
            return 404, b"not found: metrics are at /metrics\n", [(b"content-type", b"text/plain")]
        return 200, self.registry.expose().encode(), [(b"content-type", CONTENT_TYPE.encode())]
