"""Demo inputs for pond's collectors: a rotating application log and OpenTelemetry metrics.

Run as `python demo/telemetry.py OUT_DIR RUN` once per simulated collector run (RUN = 0, 1, ...).
Each run simulates six hours of a small pumping station:
- `OUT_DIR/app.log`, written by `logging.handlers.RotatingFileHandler` (small maxBytes, so the
  log rotates to app.log.1, app.log.2 during the demo, as a real service's log does);
- `OUT_DIR/access.log`, the station's web console's access log (Combined Log Format, as
  nginx writes it), appended to;
- `OUT_DIR/metrics-RUN.json`, OTLP metrics as JSON lines, the shape an OpenTelemetry
  collector's file exporter writes: built with the OpenTelemetry SDK's metric data model and
  encoded by its OTLP encoder (`opentelemetry-exporter-otlp-proto-common`), one line per
  export. The data model is filled directly, not through a MeterProvider, so the simulated
  times are the readings' times rather than the wall clock of a few-second demo.
"""

from __future__ import annotations

import logging
import logging.handlers
import math
import sys
import time
from pathlib import Path

from google.protobuf.json_format import MessageToJson
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

START_NS = 1_793_491_200 * 10**9  # 2026-11-01T00:00:00Z
STEP_S = 300  # one export every 5 minutes
RUN_HOURS = 6


def _gauge(name: str, unit: str, t_ns: int, value: float) -> Metric:
    point = NumberDataPoint(
        attributes={}, start_time_unix_nano=t_ns, time_unix_nano=t_ns, value=value
    )
    return Metric(name=name, description=None, unit=unit, data=Gauge(data_points=[point]))


def _export(t_ns: int, minute: float) -> str:
    flow = 40 + 15 * math.sin(2 * math.pi * minute / 1440) + (minute % 7) / 3
    pressure = 3.1 + 0.2 * math.cos(2 * math.pi * minute / 720)
    metrics = [
        _gauge("pump.flow", "L/min", t_ns, round(flow, 3)),
        _gauge("pump.pressure", "bar", t_ns, round(pressure, 4)),
    ]
    data = MetricsData(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource.create({"service.name": "pump-station"}),
                scope_metrics=[
                    ScopeMetrics(
                        scope=InstrumentationScope("demo.pump"), metrics=metrics, schema_url=""
                    )
                ],
                schema_url="",
            )
        ]
    )
    return MessageToJson(encode_metrics(data), indent=None)  # type: ignore[no-any-return]


def _access_line(t: int, n: int) -> str:
    when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))
    path, status = ("/status", 200) if n % 9 else ("/pump/restart", 403 if n % 2 else 500)
    return (
        f'10.0.0.{n % 4 + 2} - - [{when}] "GET {path} HTTP/1.1" {status} {200 + n % 50} '
        f'"-" "console/1.0"\n'
    )


def main(out: Path, run: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(out / "app.log", maxBytes=8_000, backupCount=5)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("pump")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    steps = RUN_HOURS * 3600 // STEP_S
    with open(out / f"metrics-{run}.json", "w") as metrics, open(out / "access.log", "a") as web:
        for i in range(steps):
            seconds = (run * steps + i) * STEP_S
            t_ns = START_NS + seconds * 10**9
            metrics.write(_export(t_ns, seconds / 60) + "\n")
            web.write(_access_line(t_ns // 10**9, run * steps + i))
            level = "WARN" if i % 17 == 0 else "INFO"
            logger.info(
                '{"time": %d, "level": "%s", "msg": "cycle", "cycle": %d}',
                t_ns // 10**9, level, run * steps + i,
            )
    handler.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
