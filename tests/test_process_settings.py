"""Process-wide settings belong to the `pond` process, not to the library: a program that
embeds `Pond` keeps its own garbage-collector policy (docs/developer/process-settings.md),
while the CLI's entry point raises the collector's thresholds for itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import cli_env

# The embedder's side: its own GC policy set first; every call that would change the
# policy is recorded (a pause-and-restore inside a call leaves no trace in the state
# afterwards, so the calls themselves are watched), then the library is imported and
# used: a write of more than a thousand entries, listing them, reading one.
EMBEDDER = """
import gc, json, sys
calls = []
for name in ("disable", "enable", "set_threshold", "freeze", "unfreeze"):
    def record(*args, _name=name, _real=getattr(gc, name)):
        calls.append(_name)
        return _real(*args)
    setattr(gc, name, record)
gc.set_threshold(777, 11, 12)
if sys.argv[2] == "disabled":
    gc.disable()
calls.clear()
before = [gc.isenabled(), list(gc.get_threshold())]
import duckpond
from duckpond.pond import Pond
pond = Pond.create(sys.argv[1])
with pond.transaction() as tx:
    for i in range(1500):
        tx.write_bytes(f"/d/f{i:05d}", b"x%d" % i, parents=True)
listed = len(pond.list("/**"))
again = len(Pond.open(sys.argv[1]).list("/d/*"))
text = pond.read_bytes("/d/f01234")
after = [gc.isenabled(), list(gc.get_threshold())]
print(json.dumps({"before": before, "after": after, "calls": calls,
                  "listed": listed, "again": again, "text": text.decode()}))
"""


def test_importing_and_using_the_library_leaves_the_gc_policy_alone(tmp_path: Path) -> None:
    for state in ("enabled", "disabled"):
        root = tmp_path / state
        proc = subprocess.run(
            [sys.executable, "-c", EMBEDDER, str(root), state],
            capture_output=True,
            env=cli_env(),
        )
        assert proc.returncode == 0, proc.stderr.decode()
        seen = json.loads(proc.stdout)
        assert seen["listed"] == 1502 and seen["again"] == 1500  # /, /d and the files
        assert seen["text"] == "x1234"
        assert seen["calls"] == []  # never paused, re-enabled or re-tuned, even briefly
        assert seen["after"] == seen["before"] == [state == "enabled", [777, 11, 12]]


def test_the_cli_entry_point_sets_the_gc_thresholds_for_its_own_process() -> None:
    """The console script raises the thresholds before any command runs (listing many
    entries allocates objects the collector would walk over and over)."""
    probe = (
        "import gc, sys; from duckpond.cli import launch, main; "
        "main.main = lambda: print(gc.isenabled(), gc.get_threshold()); "
        "sys.argv = ['pond', 'list']; launch.main()"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, env=cli_env())
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split("\n")[0] == "True (200000, 20, 10)"
