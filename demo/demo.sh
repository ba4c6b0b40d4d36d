#!/usr/bin/env bash
# The pond demo: a small sensor pond with two post-commit jobs, a crash and a recovery,
# derived series declared with `pond apply`, a health check with `pond fsck`, a backup
# to a directory restored elsewhere, and collectors (a rotating log through `logfile-ingest`,
# OpenTelemetry metrics read as `oteljson`) feeding a reduction and the static site.
# Run with `make demo` (which puts the project's `pond` on PATH).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export POND="$here/pond"
work="$here/pond-inputs"
rm -rf "$POND" "$work" "$here/pond-backup" "$here/pond-restored"
mkdir -p "$work"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "create a pond"
pond init

step "configure two post-commit jobs: one validates, one always fails"
cat > "$work/validate.yaml" <<'YAML'
message: "validated the new data"
write_path: /reports/last-validation.txt
YAML
cat > "$work/notify.yaml" <<'YAML'
message: "notification service is down"
fail: true
YAML
pond mknod test-executor /etc/system.d/10-validate --config-path "$work/validate.yaml"
pond mknod test-executor /etc/system.d/20-notify --config-path "$work/notify.yaml"

step "write some data: a CSV as a series, twice (two versions), and a raw file"
python3 - "$work" <<'PY'
import sys, datetime as dt
out = sys.argv[1]
for day in (1, 2):
    with open(f"{out}/temps-{day}.csv", "w") as f:
        f.write("timestamp,sensor,celsius\n")
        for h in range(24):
            t = dt.datetime(2026, 11, day, h, tzinfo=dt.timezone.utc).isoformat()
            f.write(f"{t},well-{h % 3},{10 + (h * 7 % 11) / 2}\n")
PY
pond mkdir -p /sensors
pond copy "host+csv+series://$work/temps-1.csv" /sensors/temps
pond copy "host+csv+series://$work/temps-2.csv" /sensors/temps
pond copy "host://$work/validate.yaml" /sensors/README.yaml

step "list and query"
pond list -l
pond cat /sensors/temps --format table --sql \
  "SELECT sensor, count(*) AS n, round(avg(celsius), 2) AS avg_c FROM source GROUP BY sensor ORDER BY sensor"
pond cat /sensors/temps --format csv --time-start 2026-11-02T00:00:00Z --time-end 2026-11-02T02:00:00Z \
  --sql "SELECT * FROM source ORDER BY timestamp"

step "the control table: every transaction and every job"
pond control --limit 5
seq=$(pond control recent --limit 1 --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["txn_seq"])')
pond control detail --txn-seq "$seq"

step "simulate a crash: the machine dies between the two jobs of the next write"
POND_CRASH_AT=between_tasks pond mkdir /incoming || echo "(pond was killed: exit $?)"

step "what the crash left unfinished"
pond control incomplete

step "recover finishes it"
pond recover
pond recover   # a second run has nothing to do
pond control --limit 2

step "the recovery queries run as plain SQL"
pond control --sql "SELECT parent_txn_seq, execution_seq, factory_name, config_path, error_message, duration_ms
FROM control_table
WHERE record_type = 'post_commit_failed'
ORDER BY timestamp DESC
LIMIT 3"
step "derived series: a pipeline declared in YAML, computed on read"
cat > "$work/pipeline.yaml" <<'YAML'
version: v1
kind: mknod
metadata: {path: /derived/synthetic}
spec:
  factory: synthetic-timeseries
  config:
    start: 2026-11-01T00:00:00Z
    end: 2026-11-02T23:00:00Z
    interval: 1h
    points:
      - name: level
        components: [{type: sine, amplitude: 2, period: 1d, offset: 10}]
---
version: v1
kind: mknod
metadata: {path: /derived/reduced}
spec:
  factory: temporal-reduce
  config:
    in_pattern: series:///sensors/temps
    out_pattern: temps
    resolutions: [6h, 1d]
    aggregations: [{type: avg, columns: [celsius]}, {type: max, columns: [celsius]}]
YAML
pond apply -f "$work/pipeline.yaml"
pond apply -f "$work/pipeline.yaml"   # idempotent: everything unchanged, nothing committed
pond list -l '/derived/**'
pond cat '/derived/reduced/temps/res=1d.series' --format table
pond cat /derived/synthetic --format table --sql \
  "SELECT min(level) AS low, max(level) AS high, count(*) AS n FROM source"

step "a health check: every log entry, file and blob"
pond fsck

step "back up to a directory (then every write is pushed), restore it elsewhere"
backup="$here/pond-backup"
restored="$here/pond-restored"
pond backup add b1 "file://$backup"
pond copy "host://$work/notify.yaml" /sensors/NOTES.yaml   # pushed by the steward
pond remote list
pond verify
POND="$restored" pond restore b1 "file://$backup"
POND="$restored" pond status
POND="$restored" pond cat /sensors/NOTES.yaml

step "collectors: a rotating application log and OpenTelemetry metrics"
# demo/telemetry.py plays a pump station: each call writes six hours of OTLP metrics as JSON
# lines (the OpenTelemetry SDK's data model, encoded by its OTLP encoder) and appends to a
# log that Python's RotatingFileHandler rotates as it grows.
tele="$work/telemetry"
cat > "$work/applog.yaml" <<YAML
archived_pattern: $tele/*.log.*
active_pattern: $tele/*.log
pond_path: /logs/pump
YAML
pond mkdir -p /etc/collect
pond mkdir -p /ingest/otel
pond mknod logfile-ingest /etc/collect/applog --config-path "$work/applog.yaml"
for run in 0 1 2 3; do
  python3 "$here/telemetry.py" "$tele" "$run"
  pond --wait 60 run /etc/collect/applog            # new complete lines, across rotations
  pond copy "host://$tele/metrics-$run.json" /ingest/otel/   # raw, as a collector drops them
done
ls "$tele"
pond run /etc/collect/applog b3sum                  # the pond's copies, b3sum-compatible
pond cat 'jsonlogs:///logs/pump/app.log' --format table \
  --sql "SELECT level, count(*) AS lines, min(cycle) AS first, max(cycle) AS last FROM source GROUP BY level ORDER BY level"
pond cat 'weblog:///logs/pump/access.log' --format table \
  --sql "SELECT path, status, count(*) AS requests FROM source GROUP BY path, status ORDER BY path, status"
pond describe 'oteljson:///ingest/otel/metrics-*.json'
pond copy "host+oteljson+series://$tele/metrics-0.json" /sensors/pump
pond copy "host+oteljson+series://$tele/metrics-1.json" /sensors/pump
cat > "$work/pump.yaml" <<'YAML'
version: v1
kind: mknod
metadata: {path: /derived/pump}
spec:
  factory: temporal-reduce
  config:
    in_pattern: series:///sensors/pump
    out_pattern: pump
    resolutions: [1h]
    aggregations: [{type: avg, columns: [pump.flow, pump.pressure]}]
YAML
pond apply -f "$work/pump.yaml"
pond cat '/derived/pump/pump/res=1h.series' --format table \
  --sql 'SELECT * FROM source ORDER BY 1 LIMIT 4'

step "an instrument API: the HydroVu collector (against a local stand-in for the vendor)"
coproc HV { python3 "$here/hydrovu_fake.py"; }
read -r hv_url <&"${HV[0]}"
read -r HYDROVU_CLIENT_ID <&"${HV[0]}"
read -r HYDROVU_CLIENT_SECRET <&"${HV[0]}"
export HYDROVU_CLIENT_ID HYDROVU_CLIENT_SECRET
cat > "$work/hydrovu.yaml" <<YAML
hydrovu_path: /hydrovu
max_points_per_run: 10000
client_id: \${env:HYDROVU_CLIENT_ID}
client_secret: \${env:HYDROVU_CLIENT_SECRET}
base_url: $hv_url
devices:
  - {name: WellA, id: 1001}
  - {name: WellB, id: 1002}
YAML
pond mknod hydrovu /etc/collect/hydrovu --config-path "$work/hydrovu.yaml"
pond --wait 60 run /etc/collect/hydrovu collect
echo more >&"${HV[1]}"; read -r _ <&"${HV[0]}"      # six more hours measured
pond --wait 60 run /etc/collect/hydrovu collect     # only what is new
pond list -l '/hydrovu/**'
pond cat '/hydrovu/devices/1001/WellA_active.series' --format table \
  --sql 'SELECT count(*) AS readings, min(timestamp) AS first, max(timestamp) AS last FROM source'
exec {HV[1]}>&-; wait "$HV_PID" 2>/dev/null || true

step "a static site of the pond: charts of every series and the steward's status page"
cat > "$work/site.yaml" <<'YAML'
title: Demo pond
labels: {/sensors/temps: Well temperatures, /derived/synthetic: Synthetic level, /sensors/pump: Pump station,
  /hydrovu/devices/1001/WellA_active.series: Well A (HydroVu)}
units: {/sensors/temps: °C, /derived/synthetic: m}
YAML
pond site build "$here/site" --config "$work/site.yaml"

echo
echo "demo pond left at $POND; its site: file://$here/site/index.html"
