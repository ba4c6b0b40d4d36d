"""OTLP metrics as JSON lines, shaped as an OpenTelemetry collector's file exporter writes
them (proto3 JSON: camelCase keys, 64-bit integers as strings, resource and scope
attributes, gauges and sums)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND  # 2023-11-14T22:13:20Z


def _attr(key: str, value: str) -> dict[str, object]:
    return {"key": key, "value": {"stringValue": value}}


def request_line(
    t_ns: int, values: Mapping[str, float | int], *, kind: str = "gauge", service: str = "pumps"
) -> str:
    """One ExportMetricsServiceRequest: one point per metric at `t_ns`. An int value is
    written as asInt (a string, as proto3 JSON does), a float as asDouble."""
    metrics = []
    for name, value in values.items():
        point: dict[str, object] = {
            "attributes": [_attr("site", "north")],
            "startTimeUnixNano": str(T0),
            "timeUnixNano": str(t_ns),
        }
        if isinstance(value, int):
            point["asInt"] = str(value)
        else:
            point["asDouble"] = value
        body: dict[str, object] = {"dataPoints": [point]}
        if kind == "sum":
            body.update(aggregationTemporality=2, isMonotonic=True)
        metrics.append({"name": name, "unit": "1", "description": "", kind: body})
    doc = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [_attr("service.name", service)]},
                "scopeMetrics": [
                    {"scope": {"name": "otel-test", "version": "1.0"}, "metrics": metrics}
                ],
                "schemaUrl": "https://opentelemetry.io/schemas/1.21.0",
            }
        ]
    }
    return json.dumps(doc, separators=(",", ":"))


def lines_file(rows: Sequence[tuple[int, Mapping[str, float | int]]]) -> bytes:
    return "".join(request_line(t, values) + "\n" for t, values in rows).encode()
