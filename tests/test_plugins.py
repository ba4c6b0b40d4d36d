"""Factories are plugins (issue 18): a package installed beside pond adds factories through
the `duckpond.factories` entry points, used by the real CLI like the built-in ones.

Each test makes its plugin distribution itself: a module and a `NAME.dist-info` directory
(METADATA, entry_points.txt) in a directory that the CLI subprocess gets on PYTHONPATH,
which is how an installed package looks to importlib.metadata.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import run_pond

from duckpond.factories import registry
from duckpond.factories.base import Factory, RunContext
from duckpond.pond import Pond

# The example plugin of docs/factories/writing.md: a job and a data factory.
PLUGIN = '''\
"""pond_stamp: an example duckpond factory plugin."""

from __future__ import annotations

from typing import Any

from duckpond.errors import FactoryError
from duckpond.factories.base import DATA, Factory, Fields, RunContext
from duckpond.factories.live import BuildContext, LiveData, LiveNode


class Stamp(Factory):
    """A job: writes `message` and what it saw to /stamps/LABEL."""

    name = "stamp"
    description = "Writes `message`, its parent transaction and the version of `watch`."

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {
            "message": f.get("message", str, required=True),
            "watch": f.get("watch", str, default="/"),
        }
        f.done()
        return out

    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        cfg = self.validate(config)  # `config` is as stored (references expanded): defaults
        found = ctx.reader().lookup(cfg["watch"])  # the pond as committed
        seen = f"v{found.row.version}" if found is not None else "missing"
        text = f"{cfg['message']} after txn {ctx.parent_txn_seq}: {cfg['watch']} {seen}"
        ctx.write_bytes(f"/stamps/{ctx.label}", (text + "\\n").encode())
        ctx.log(text)


class Shout(Factory):
    """A data factory: the file `input`, upper-cased, computed on read."""

    name = "shout"
    kind = DATA
    description = "The raw file `input`, upper-cased."

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {"input": f.get("input", str, required=True)}
        f.done()
        return out

    def build(self, config: dict[str, Any], ctx: BuildContext) -> LiveNode:
        source = ctx.lookup(config["input"])
        if not isinstance(source, LiveData):
            raise FactoryError(f"{ctx.path}: {config['input']} is not a raw file")
        return Loud(source)


class Loud(LiveData):
    def __init__(self, source: LiveData) -> None:
        self.source = source

    def key(self) -> str:
        return "shout:" + self.source.key()

    def read_bytes(self) -> bytes:
        return self.source.read_bytes().upper()


STAMP = Stamp()
SHOUT = Shout()
'''


# A factory module written the older way: it registers its own instance on import (still
# loaded through its entry point, which finds the same instance).
OLD_STYLE = '''\
from duckpond.factories.base import Factory
from duckpond.factories.registry import register


class Old(Factory):
    name = "old-style"
    description = "Registers itself."

    def validate(self, config):
        return config

    def run(self, config, ctx):
        ctx.write_bytes("/old", b"ran")


FACTORY = Old()
register(FACTORY)
'''


def make_dist(site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata finds it on sys.path."""
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[duckpond.factories]\n{lines}")


def with_path(site: Path) -> dict[str, str]:
    old = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(site) + (os.pathsep + old if old else "")}


def stamp_plugin(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site-packages"
    make_dist(
        site,
        "pond-stamp",
        {"stamp": "pond_stamp:STAMP", "shout": "pond_stamp:SHOUT"},
        {"pond_stamp": PLUGIN},
    )
    return with_path(site)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_plugin_factories_through_mknod_apply_and_post_commit(tmp_path: Path) -> None:
    env = stamp_plugin(tmp_path)
    pond = tmp_path / "pond"
    run_pond("init", pond=pond, env=env)

    listed = json.loads(run_pond("list-factories", "--format", "json", env=env).stdout)
    packages = {f["name"]: f["package"] for f in listed}
    assert packages["stamp"] == "pond-stamp"
    assert packages["shout"] == "pond-stamp"
    assert packages["command"] == "duckpond"
    text = run_pond("list-factories", env=env).stdout.decode()
    assert "stamp (executor, pond-stamp)" in text

    # mknod: a data factory node, computed on read
    hello = write(tmp_path / "hello.txt", "hello, pond\n")
    run_pond("mkdir", "/notes", pond=pond, env=env)
    run_pond("copy", f"host://{hello}", "/notes/hello.txt", pond=pond, env=env)
    shout = write(tmp_path / "shout.yaml", "input: /notes/hello.txt\n")
    run_pond("mknod", "shout", "/notes/loud", "--config-path", shout, pond=pond, env=env)
    assert run_pond("cat", "/notes/loud", pond=pond, env=env).stdout == b"HELLO, POND\n"

    # a post-commit job under /etc/system.d/: its own creation is the first write it follows
    stamp = write(tmp_path / "stamp.yaml", "message: stamped\nwatch: /notes/hello.txt\n")
    run_pond(
        "mknod", "stamp", "/etc/system.d/10-stamp", "--config-path", stamp, pond=pond, env=env
    )
    seq = 5  # init, mkdir, copy, mknod shout, mknod stamp
    out = run_pond("cat", "/stamps/10-stamp", pond=pond, env=env).stdout.decode()
    assert out == f"stamped after txn {seq}: /notes/hello.txt v1\n"

    # apply: both factories from a manifest, in one transaction; the job follows it too
    manifest = write(
        tmp_path / "pond.yaml",
        f"""\
version: v1
kind: mknod
metadata: {{path: /jobs/by-hand}}
spec:
  factory: stamp
  config: {{message: applied, watch: /notes/loud}}
---
version: v1
kind: copy
metadata: {{path: /notes/hello.txt}}
spec: {{source: "host://{hello}", overwrite: true}}
---
version: v1
kind: mknod
metadata: {{path: /notes/louder}}
spec:
  factory: shout
  config: {{input: /notes/loud}}
""",
    )
    write(hello, "hello again\n")
    run_pond("apply", "-f", manifest, pond=pond, env=env)
    assert run_pond("cat", "/notes/louder", pond=pond, env=env).stdout == b"HELLO AGAIN\n"
    out = run_pond("cat", "/stamps/10-stamp", pond=pond, env=env).stdout.decode()
    assert out == f"stamped after txn {seq + 2}: /notes/hello.txt v2\n"  # seq+1: its own write

    # and `pond run` of the applied node
    run_pond("run", "/jobs/by-hand", pond=pond, env=env)
    out = run_pond("cat", "/stamps/by-hand", pond=pond, env=env).stdout.decode()
    assert out == "applied after txn None: /notes/loud v1\n"  # `pond run`: no parent

    # without the plugin on the path its factories are unknown: said in one line
    proc = run_pond("mknod", "shout", "/notes/again", "--config-path", shout, pond=pond, check=1)
    err = proc.stderr.decode()
    assert len(err.splitlines()) == 1 and err.startswith("error: unknown factory 'shout'"), err


def test_a_broken_plugin_is_one_error_line_and_breaks_nothing_else(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    make_dist(site, "pond-broken", {"broken": "pond_broken_gone:FACTORY"}, {})
    make_dist(site, "pond-stamp", {"stamp": "pond_stamp:STAMP"}, {"pond_stamp": PLUGIN})
    make_dist(site, "pond-old", {"old-style": "pond_old:FACTORY"}, {"pond_old": OLD_STYLE})
    env = with_path(site)
    pond = tmp_path / "pond"
    on = {"pond": pond, "env": env}
    run_pond("init", **on)
    config = write(tmp_path / "c.yaml", "message: hi\n")

    proc = run_pond("mknod", "broken", "/x", "--config-path", config, pond=pond, env=env, check=1)
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "error: factory plugin 'broken' (entry point 'broken = pond_broken_gone:FACTORY' of "
        "package pond-broken) failed to load: ModuleNotFoundError:"
    ), lines
    assert run_pond("cat", "/x", pond=pond, env=env, check=False).returncode != 0

    # the other factories work
    for factory, node in (("stamp", "20-stamp"), ("old-style", "10-old")):
        run_pond("mknod", factory, f"/etc/system.d/{node}", "--config-path", config, **on)
    assert run_pond("cat", "/old", pond=pond, env=env).stdout == b"ran"
    proc = run_pond("list-factories", "--format", "json", env=env)
    names = {f["name"] for f in json.loads(proc.stdout)}
    assert {"stamp", "old-style", "command", "sitegen"} <= names and "broken" not in names
    warnings = proc.stderr.decode().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: factory plugin 'broken'")

    # a plugin that breaks after its job was set up (its module gone): the job fails with
    # one line, the write and the other jobs do not, and listing still shows every node
    (site / "pond_old.py").unlink()
    proc = run_pond("mkdir", "/y", pond=pond, env=env)
    said = proc.stderr.decode().splitlines()
    assert [line for line in said if not line.startswith("[20-stamp] ")] == [
        "warning: post-commit task /etc/system.d/10-old (old-style) failed: factory plugin "
        "'old-style' (entry point 'old-style = pond_old:FACTORY' of package pond-old) failed "
        "to load: ModuleNotFoundError: No module named 'pond_old'"
    ]
    out = run_pond("cat", "/stamps/20-stamp", pond=pond, env=env).stdout.decode()
    assert out.startswith("hi after txn")
    proc = run_pond("list", "/etc/system.d/*", pond=pond, env=env)
    assert b"10-old" in proc.stdout and b"20-stamp" in proc.stdout


class Echo(Factory):
    name = "echo-for-embedders"
    description = "Writes its `text` to /echo."

    def validate(self, config: dict[str, object]) -> dict[str, object]:
        return {"text": str(config.get("text", ""))}

    def run(self, config: dict[str, object], ctx: RunContext) -> None:
        ctx.write_bytes("/echo", str(config["text"]).encode())


def test_a_program_embedding_pond_registers_its_own_factory(tmp_path: Path) -> None:
    registry.register(Echo())
    pond = Pond.create(tmp_path / "pond")
    pond.mknod("echo-for-embedders", "/jobs/echo", b"text: hello\n")
    pond.run("/jobs/echo")
    assert pond.read_bytes("/echo") == b"hello"
    assert "echo-for-embedders" in {f.name for f in registry.all_factories()}


def test_a_jobs_progress_reaches_it_through_its_context(tmp_path: Path) -> None:
    """`backup_add`'s first push is the new node's post-commit `remote` job: the caller's
    progress callback reaches that job through its RunContext (no process-wide variable)."""
    pond = Pond.create(tmp_path / "pond")
    with pond.transaction() as tx:
        tx.write_bytes("/data.bin", os.urandom(4096))
    calls: list[tuple[int, int]] = []
    pushed = pond.backup_add(
        "b", f"file://{tmp_path / 'backup'}", progress=lambda d, t: calls.append((d, t))
    )
    assert pushed is None  # pushed by the job, not directly
    assert calls and calls[-1][0] > 0 and calls[-1][0] == calls[-1][1]
    assert [r.pushed_txn_seq for r in pond.remote_list()] == [pond.data.last_txn_seq()]
