"""The Prometheus registry (cybermiles_node.operator.metrics): exposition format, updates, the
/metrics app.

`parse_exposition` is a strict little parser of the text format 0.0.4: every sample line must
belong to the family of the TYPE line before it, histogram buckets must be cumulative and end at
+Inf = count. Each test renders, parses and checks values through it, the way a scraper would.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pytest

from cybermiles_node.operator.metrics import (
    CONTENT_TYPE,
    MetricsApp,
    NodeMetrics,
    Registry,
)
from tests.unit.test_tendermint_endpoint import asgi_get, http_get, serve_in_thread

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}

Labels = tuple[tuple[str, str], ...]


@dataclass
class Family:
    name: str
    kind: str = ""
    help: str = ""
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)


def _parse_labels(text: str | None) -> Labels:
    if not text:
        return ()
    labels = []
    pos = 0
    while pos < len(text):
        match = _LABEL.match(text, pos)
        assert match, f"bad labels {text!r} at {pos}"
        value = re.sub(
            r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), match.group(2)
        )
        labels.append((match.group(1), value))
        pos = match.end()
    return tuple(labels)


def _parse_value(text: str) -> float:
    return {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(text) or float(text)


def parse_exposition(text: str) -> dict[str, Family]:
    """Families by name; asserts the format rules a Prometheus scraper relies on."""
    assert text.endswith("\n")
    families: dict[str, Family] = {}
    current: Family | None = None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in families, f"family {name} twice"
            current = families[name] = Family(name, help=help_text)
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert current is not None and name == current.name and kind in _SUFFIXES, line
            current.kind = kind
        else:
            match = _SAMPLE.match(line)
            assert match and current is not None and current.kind, f"bad line {line!r}"
            name, _, labels, value = match.groups()
            suffix = name[len(current.name) :]
            assert name.startswith(current.name) and suffix in _SUFFIXES[current.kind], line
            current.samples[(name, _parse_labels(labels))] = _parse_value(value)
    assert list(families) == sorted(families), "families are sorted by name"
    for family in families.values():
        if family.kind == "histogram":
            _check_histogram(family)
    return families


def _check_histogram(family: Family) -> None:
    buckets: dict[Labels, list[tuple[float, float]]] = {}
    for (name, labels), value in family.samples.items():
        if name.endswith("_bucket"):
            le = dict(labels)["le"]
            rest = tuple(pair for pair in labels if pair[0] != "le")
            buckets.setdefault(rest, []).append((_parse_value(le), value))
    for rest, pairs in buckets.items():
        counts = [count for _, count in pairs]
        assert [bound for bound, _ in pairs] == sorted(bound for bound, _ in pairs)
        assert counts == sorted(counts), "cumulative"
        assert pairs[-1][0] == math.inf
        assert family.samples[(f"{family.name}_count", rest)] == counts[-1]


def value_of(text: str, family: str, sample: str | None = None, **labels: str) -> float:
    samples = parse_exposition(text)[family].samples
    return samples[(sample or family, tuple(labels.items()))]


NODE_METRICS = {
    "cybermiles_consensus_height": "gauge",
    "cybermiles_consensus_round": "gauge",
    "cybermiles_consensus_rounds_total": "counter",
    "cybermiles_consensus_validators": "gauge",
    "cybermiles_consensus_block_interval_seconds": "histogram",
    "cybermiles_consensus_committed_txs_total": "counter",
    "cybermiles_p2p_peers": "gauge",
    "cybermiles_p2p_bans_total": "counter",
    "cybermiles_mempool_size": "gauge",
    "cybermiles_mempool_rejected_total": "counter",
    "cybermiles_rpc_requests_total": "counter",
}


def test_node_metrics_declares_every_metric_at_zero() -> None:
    families = parse_exposition(NodeMetrics().registry.expose())
    assert {name: f.kind for name, f in families.items()} == NODE_METRICS
    for family in families.values():
        assert family.help
        assert all(value == 0 for value in family.samples.values())


def test_node_metrics_updates_show_in_the_exposition() -> None:
    metrics = NodeMetrics()
    metrics.consensus_height.set(42)
    metrics.consensus_round.set(2)
    metrics.consensus_rounds_total.inc()
    metrics.consensus_rounds_total.inc(2)
    metrics.consensus_committed_txs_total.inc(17)
    metrics.p2p_peers.set(3)
    metrics.p2p_peers.dec()
    metrics.mempool_size.inc(5)
    for interval in (0.3, 1.0, 1.5, 100.0):
        metrics.consensus_block_interval_seconds.observe(interval)
    text = metrics.registry.expose()
    assert value_of(text, "cybermiles_consensus_height") == 42
    assert value_of(text, "cybermiles_consensus_round") == 2
    assert value_of(text, "cybermiles_consensus_rounds_total") == 3
    assert value_of(text, "cybermiles_consensus_committed_txs_total") == 17
    assert value_of(text, "cybermiles_p2p_peers") == 2
    assert value_of(text, "cybermiles_mempool_size") == 5
    histogram = "cybermiles_consensus_block_interval_seconds"
    assert value_of(text, histogram, f"{histogram}_count") == 4
    assert value_of(text, histogram, f"{histogram}_sum") == pytest.approx(102.8)
    assert value_of(text, histogram, f"{histogram}_bucket", le="1") == 2  # 0.3 and 1.0 (le)
    assert value_of(text, histogram, f"{histogram}_bucket", le="2") == 3
    assert value_of(text, histogram, f"{histogram}_bucket", le="60") == 3
    assert value_of(text, histogram, f"{histogram}_bucket", le="+Inf") == 4
    assert "cybermiles_consensus_height 42\n" in text  # integers without ".0"


def test_labels_are_escaped_sorted_and_checked() -> None:
    registry = Registry()
    requests = registry.counter("rpc_total", "Requests.", labels=("method", "code"))
    requests.inc(method="eth_call", code="0")
    requests.inc(3, method='we"ird\\name\n', code="1")
    requests.inc(method="eth_blockNumber", code="0")
    text = registry.expose()
    families = parse_exposition(text)
    assert families["rpc_total"].samples == {
        ("rpc_total", (("method", "eth_blockNumber"), ("code", "0"))): 1,
        ("rpc_total", (("method", "eth_call"), ("code", "0"))): 1,
        ("rpc_total", (("method", 'we"ird\\name\n'), ("code", "1"))): 3,
    }
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == sorted(lines)  # label values in order, whatever the order of updates
    assert requests.value(method="eth_call", code="0") == 1
    with pytest.raises(ValueError):
        requests.inc(method="eth_call")  # a label missing
    with pytest.raises(ValueError):
        requests.inc(method="eth_call", code="0", extra="x")


def test_labelled_families_appear_when_first_used() -> None:
    registry = Registry()
    gauge = registry.gauge("queue", "Queue length.", labels=("channel",))
    histogram = registry.histogram("latency", "Latency.", (0.5, 0.1), labels=("peer",))
    assert parse_exposition(registry.expose())["queue"].samples == {}
    gauge.set(4, channel="votes")
    histogram.observe(0.2, peer="a")
    families = parse_exposition(registry.expose())
    assert families["queue"].samples == {("queue", (("channel", "votes"),)): 4}
    buckets = [key for key in families["latency"].samples if key[0] == "latency_bucket"]
    assert [dict(labels)["le"] for _, labels in buckets] == ["0.1", "0.5", "+Inf"]
    assert histogram.count(peer="a") == 1 and histogram.count(peer="b") == 0


def test_help_text_is_escaped() -> None:
    registry = Registry()
    registry.gauge("g", "line one\nback\\slash")
    assert "# HELP g line one\\nback\\\\slash\n" in registry.expose()


def test_misuse_is_refused() -> None:
    registry = Registry()
    counter = registry.counter("c_total", "A counter.")
    with pytest.raises(ValueError):
        counter.inc(-1)
    with pytest.raises(ValueError):
        registry.gauge("c_total", "Same name.")
    with pytest.raises(ValueError):
        registry.histogram("h", "No buckets.", ())
    with pytest.raises(ValueError):
        registry.histogram("h2", "Reserved label.", (1.0,), labels=("le",))


def test_rendering_is_deterministic() -> None:
    def build(order: list[str]) -> str:
        registry = Registry()
        for name in order:
            registry.gauge(name, f"{name} help").set(len(name))
        return registry.expose()

    assert build(["b", "a", "cc"]) == build(["cc", "b", "a"])


def test_metrics_app_serves_the_registry_over_http() -> None:
    metrics = NodeMetrics()
    metrics.consensus_height.set(7)
    app = MetricsApp(metrics.registry)

    def client(port: int) -> list[tuple[int, dict[str, str], bytes]]:
        return [http_get(port, "/metrics"), http_get(port, "/"), http_get(port, "/metrics", "POST")]

    ok, missing, post = serve_in_thread(app, client)
    assert ok[0] == 200
    assert ok[1]["content-type"] == CONTENT_TYPE
    assert value_of(ok[2].decode(), "cybermiles_consensus_height") == 7
    assert missing[0] == 404
    assert post[0] == 405
    status, _, body = asgi_get(app, "/metrics?x=1")
    assert status == 200 and b"cybermiles_p2p_peers 0\n" in body
