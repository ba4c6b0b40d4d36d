"""Run the pond benchmarks and print one results table (`make bench`).

    python -m bench.run            full sizes (~15 min on 2 cores)
    python -m bench.run --quick    small sizes, a smoke run (< 1 min)
    python -m bench.run --only sql,writes

Progress goes to stderr, the table to stdout. Data goes to a temporary directory (removed
afterwards unless --keep); the numbers behind the table are saved as JSON in bench/out/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

from .common import REPO, Row, log, render_table
from .groups import GROUPS, run_group


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1) if m else cpu
    except OSError:
        pass
    versions = {}
    for mod in ("deltalake", "duckdb", "pyarrow"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - informational only
            versions[mod] = "?"
    git = {}
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--short", "src"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split("\n")
        git = {"git_head": head, "src_modified": ", ".join(d[3:] for d in dirty if d.strip())}
    except OSError:
        pass
    return {
        **git,
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        **versions,
    }


def _key(row: Row) -> tuple[int, str]:
    m = re.match(r"(\d+)(.*)", row.key)
    return (int(m.group(1)), m.group(2)) if m else (99, row.key)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--only", help=f"comma-separated groups of: {', '.join(GROUPS)}")
    ap.add_argument("--workdir", help="where to put generated data (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    args = ap.parse_args(argv)
    names = list(GROUPS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        ap.error(f"unknown group(s): {', '.join(unknown)}")
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    work = tempfile.mkdtemp(prefix="pond-bench-", dir=args.workdir)
    mode = "quick" if args.quick else "full"
    tag = mode if not args.only else f"{mode}-{'-'.join(names)}"
    log(f"{mode} run of {', '.join(names)} in {work}")
    t0 = time.perf_counter()
    rows: list[Row] = []
    notes: list[str] = []
    errors = 0
    spawn = multiprocessing.get_context("spawn")
    try:
        for name in names:
            log(f"group {name} (benchmarks {GROUPS[name][1]})")
            try:
                with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                    result, secs = pool.submit(run_group, name, work, args.quick).result()
            except Exception as e:  # noqa: BLE001 - one broken group must not hide the rest
                errors += 1
                text = "".join(traceback.format_exception(e))
                print(text if len(text) < 4000 else text[:4000] + " ...", file=sys.stderr)
                rows.append(
                    Row(
                        GROUPS[name][1].split(",")[0],
                        f"{name}: ERROR {e}"[:90],
                        "-",
                        "-",
                        "-",
                        "-",
                        "error",
                    )
                )
                continue
            log(f"group {name} done in {secs:.0f} s")
            rows.extend(result.rows)
            notes.extend(result.notes)
            notes.append(f"group {name}: {secs:.0f} s")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    rows.sort(key=_key)
    total = time.perf_counter() - t0
    info = machine()
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"results-{tag}.json").write_text(
        json.dumps(
            {
                "mode": mode,
                "groups": names,
                "seconds": total,
                "machine": info,
                "rows": [asdict(r) for r in rows],
                "notes": notes,
            },
            indent=2,
            default=str,
        )
    )
    for n in notes:
        log(n)
    log("machine: " + "; ".join(f"{k}={v}" for k, v in info.items()))
    log(f"total {total:.0f} s; numbers saved in {out_dir / f'results-{tag}.json'}")
    print(render_table(rows))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
