"""Soak: concurrent waiting writers (issue 17 item 1), not part of `make bench`.

    python -m bench.soak_writers [--writers 8] [--rounds 30] [--backup]

WRITERS processes each run ROUNDS `pond --wait 600 copy` one after another, all at once on
one pond (with a `file://` backup attached when --backup). Every write must commit exactly
once: exit 1 on any failed writer, a missing or doubled commit, or a `failed` control row.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CLI = [sys.executable, "-m", "duckpond.cli"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--backup", action="store_true")
    args = ap.parse_args()
    from duckpond.pond import Pond

    with tempfile.TemporaryDirectory(prefix="pond-soak-") as tmp:
        root = Path(tmp) / "pond"
        env = {k: v for k, v in os.environ.items() if k not in ("POND", "POND_CRASH_AT")}
        env["POND"] = str(root)
        subprocess.run([*CLI, "init"], env=env, check=True, capture_output=True)
        if args.backup:
            url = f"file://{tmp}/backup"
            subprocess.run([*CLI, "backup", "add", "bk", url], env=env, check=True)
        script = (
            "import subprocess, sys\n"
            "bad = 0\n"
            "for r in range(int(sys.argv[2])):\n"
            "    p = subprocess.run(sys.argv[4:] + ['--wait', '600', 'copy',\n"
            "        'host://' + sys.argv[3], f'/w{sys.argv[1]}-{r}'], capture_output=True)\n"
            "    if p.returncode:\n"
            "        bad += 1\n"
            "        sys.stderr.write(p.stderr.decode())\n"
            "sys.exit(1 if bad else 0)\n"
        )
        src = Path(tmp) / "in.csv"
        src.write_text("k,v\n1,2\n")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(w), str(args.rounds), str(src), *CLI],
                env=env,
            )
            for w in range(args.writers)
        ]
        failed = sum(p.wait() != 0 for p in procs)
        pond = Pond.open(root)
        targets = [t["args"][-1] for _, _, t in pond.data.commit_history() if "copy" in t["args"]]
        want = {f"/w{w}-{r}" for w in range(args.writers) for r in range(args.rounds)}
        kinds = pond.control.read_all(columns=["record_type"])["record_type"].to_pylist()
        problems = []
        if failed:
            problems.append(f"{failed} writer(s) had failed writes")
        if sorted(targets) != sorted(want):
            problems.append(f"{len(targets)} copy commits for {len(want)} writes")
        if "failed" in kinds:
            problems.append(f"{kinds.count('failed')} failed control rows")
        print("; ".join(problems) or f"ok: {len(want)} writes, each committed once")
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
