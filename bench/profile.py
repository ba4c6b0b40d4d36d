"""Profile one benchmark's operation with cProfile, to see where its time goes.

    python -m bench.profile CASE [--n N] [--top 25] [--sort cumulative|tottime]

Cases: write (7: pond.transaction 1 KiB write), storage-write (its storage-layer part),
postcommit (8: a write with one test-executor task), ingest (3: 100 MiB CSV),
read (4: fresh Pond.open + read_bytes after N=10,000 txns), list (5a: `pond list '/**'`),
recent (9c: `pond control recent` with N=100,000 txns), recover (9e: `pond recover`).
Ponds are built once under bench/out/profile/ and reused.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import subprocess
import sys
from pathlib import Path

from .common import REPO, log

OUT = REPO / "bench" / "out" / "profile"


def _stats(prof: cProfile.Profile | str, top: int, sort: str) -> str:
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf) if isinstance(prof, str) else pstats.Stats(prof, stream=buf)
    st.strip_dirs().sort_stats(sort).print_stats(top)
    return buf.getvalue()


def _cli_profile(argv: list[str], top: int, sort: str) -> str:
    """Profile a whole `pond` process (imports included)."""
    out = OUT / "cli.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "duckpond.cli", *argv]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return _stats(str(out), top, sort)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.profile")
    ap.add_argument(
        "case",
        choices=[
            "write",
            "storage-write",
            "postcommit",
            "ingest",
            "read",
            "list",
            "recent",
            "recover",
        ],
    )
    ap.add_argument("--n", type=int, help="history size for read/list/recent/recover")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--sort", default="cumulative")
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)

    from duckpond.pond import Pond

    prof = cProfile.Profile()
    if args.case in ("write", "storage-write", "postcommit"):
        import tempfile

        from .layers import storage_write
        from .writes import PAYLOAD, TASK_CONFIG

        root = Path(tempfile.mkdtemp(dir=OUT)) / "pond"
        pond = Pond.create(root)
        if args.case == "postcommit":
            pond.mknod("test-executor", "/etc/system.d/10-t", TASK_CONFIG)
        with pond.transaction(args=["setup"]) as tx:
            tx.mkdir("/p")

        def one(i: int) -> None:
            if args.case == "storage-write":
                storage_write(pond, lambda tx: tx.write_bytes(f"/p/f{i}", PAYLOAD), ["b"])
            else:
                with pond.transaction(args=["b"]) as tx:
                    tx.write_bytes(f"/p/f{i}", PAYLOAD)

        for i in range(10):
            one(i)
        prof.enable()
        for i in range(10, 10 + args.reps):
            one(i)
        prof.disable()
        print(f"{args.reps} operations")
        print(_stats(prof, args.top, args.sort))
        return
    if args.case == "ingest":
        import tempfile

        from .ingest import make_csv

        csv = OUT / "big.csv"
        if not csv.exists():
            make_csv(csv, 100 * 2**20)
        pond = Pond.create(Path(tempfile.mkdtemp(dir=OUT)) / "pond")
        prof.enable()
        with pond.transaction(args=["b"]) as tx:
            tx.write_csv_file("/t", csv)
        prof.disable()
        print(_stats(prof, args.top, args.sort))
        return
    if args.case in ("read", "list"):
        from .manyfiles import build, file_path

        n = args.n or 10_000
        root = OUT / f"many-{n}"
        if not (root / "data").exists():
            log(f"building {root} ({n} write transactions)")
            build(root, n, 100)
        if args.case == "list":
            print(_cli_profile(["--pond", str(root), "list", "/**"], args.top, args.sort))
            return
        Pond.open(root).read_bytes(file_path(1, 100))
        prof.enable()
        for i in range(20):
            Pond.open(root).read_bytes(file_path(i * 37 % n, 100))
        prof.disable()
        print("20 x (Pond.open + read_bytes)")
        print(_stats(prof, args.top, args.sort))
        return
    from .history import build_large

    n = args.n or 100_000
    root = OUT / f"history-{n}"
    if not (root / "data").exists():
        log(f"building {root} ({n} recorded transactions)")
        build_large(root, n)
    sub = ["control", "recent"] if args.case == "recent" else ["recover"]
    print(_cli_profile(["--pond", str(root), *sub], args.top, args.sort))


if __name__ == "__main__":
    main()
