"""`pond apply` copies format URLs as `pond copy` does: parsed on the way in, idempotent."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from conftest import run_pond
from otlp_lines import SECOND, T0, lines_file

MANIFEST = """\
version: v1
kind: copy
metadata: {{path: /metrics/pump}}
spec: {{source: "host+oteljson+gzip+series://{metrics}"}}
"""


def test_apply_copies_an_oteljson_series_once(pond_dir: Path, tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json.gz"
    rows = [(T0 + i * SECOND, {"flow": 1.5 * i, "pressure": 3.0}) for i in range(5)]
    metrics.write_bytes(gzip.compress(lines_file(rows)))
    manifest = tmp_path / "pond.yaml"
    manifest.write_text(MANIFEST.format(metrics=metrics))

    first = run_pond("apply", "-f", str(manifest), pond=pond_dir)
    assert b"created" in first.stdout
    out = run_pond(
        "cat",
        "/metrics/pump",
        "--format",
        "json",
        "--sql",
        "SELECT count(*) AS n, sum(flow) AS flow FROM source",
        pond=pond_dir,
    )
    assert json.loads(out.stdout) == [{"n": 5, "flow": 15.0}]
    described = json.loads(
        run_pond("describe", "/metrics/pump", "--format", "json", pond=pond_dir).stdout
    )
    assert described["type"] == "file:series:physical"
    assert described["time_column"] == "timestamp"

    again = run_pond("apply", "-f", str(manifest), pond=pond_dir)
    assert b"unchanged" in again.stdout and b"created" not in again.stdout
