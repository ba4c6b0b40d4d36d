"""The `pond` group imports a command's module only when that command runs (cli/app.py
COMMANDS), and its table of where each command lives matches what the modules register."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import cli_env, run_pond

from duckpond.cli import app

CLI_PACKAGE = Path(app.__file__).parent


def _probe(code: str) -> str:
    """Run `code` in a fresh interpreter (nothing of the CLI imported yet); its stdout."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, env=cli_env())
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def test_the_table_names_every_command_where_it_is_defined() -> None:
    """Importing each module of the CLI package in turn registers exactly the commands the
    table gives that module, and no module registers a command the table lacks: a new
    command or module left out of COMMANDS fails here."""
    modules = sorted(
        p.stem for p in CLI_PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")
    )
    code = (
        "import importlib, json; from duckpond.cli.app import cli; seen = {}\n"
        f"for name in {modules!r}:\n"
        "    before = set(cli.commands)\n"
        "    importlib.import_module('duckpond.cli.' + name)\n"
        "    for cmd in sorted(set(cli.commands) - before):\n"
        "        seen[cmd] = name\n"
        "print(json.dumps(seen))"
    )
    registered = json.loads(_probe(code))
    assert registered == app.COMMANDS
    assert len(registered) == 34
    assert app.COMMAND_MODULES == (
        "export",
        "factories",
        "files",
        "remotes",
        "series",
        "site",
        "sql",
        "steward",
        "tlog",
        "undo",
    )


def test_cat_imports_only_the_module_that_defines_it(tmp_path: Path) -> None:
    """And of the rest of pond, only the query modules a host file's SQL needs."""
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"k": [1, 2, 2], "v": [0.5, 1.5, 2.5]}), path)
    args = [
        "cat",
        f"host+table://{path}",
        "--sql",
        "SELECT k, sum(v) AS s FROM source GROUP BY k ORDER BY k",
        "--format",
        "csv",
    ]
    code = (
        "import sys; from duckpond.cli.main import cli\n"
        f"cli.main(args={args!r}, prog_name='pond', standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith('duckpond.')))\n"
        "print('json' in sys.modules)"
    )
    out = _probe(code).splitlines()
    # a host file needs neither the pond's views, the format registry nor json (for CSV)
    assert out == [
        '"k","s"',
        "1,0.5",
        "2,4",
        "['duckpond.cli', 'duckpond.cli.app', 'duckpond.cli.files', 'duckpond.cli.main', "
        "'duckpond.cli.render', 'duckpond.errors', 'duckpond.query', 'duckpond.query.limits', "
        "'duckpond.query.relations', 'duckpond.query.rows', 'duckpond.query.sources', "
        "'duckpond.query.sql', 'duckpond.query.sqltext', 'duckpond.query.urls']",
        "False",
    ]
    assert run_pond(*args).stdout.decode() == '"k","s"\n1,0.5\n2,4\n'


def test_help_lists_every_command_with_its_short_help() -> None:
    """`pond --help` from the lazy group is the help of the group with every command
    module imported first (as it was built before), each command with its short help."""
    code = (
        "import json, os; os.environ['COLUMNS'] = '80'\n"
        "from duckpond.cli.app import load_command_modules, cli\n"
        "load_command_modules()\n"
        "with cli.make_context('pond', [], resilient_parsing=True) as ctx:\n"
        "    print(ctx.get_help())\n"
        "limit = 78 - 6 - max(map(len, cli.commands))  # click's width 80 - 2, as it lists\n"
        "print(json.dumps({n: c.get_short_help_str(limit) for n, c in cli.commands.items()}))"
    )
    *eager, short = _probe(code).splitlines()
    out = run_pond("--help", env={"COLUMNS": "80"}).stdout.decode()
    assert out.splitlines() == eager
    listed = out.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == sorted(app.COMMANDS)
    helps = json.loads(short)
    assert [line.split(None, 1)[1] for line in listed] == [helps[n] for n in sorted(helps)]
    assert "  cat                  Raw bytes of a file, or a table/series/query result." in listed


def test_a_command_missing_from_the_table_still_runs_and_unknown_ones_fail() -> None:
    """A module merged without its rows in COMMANDS still works and is still listed in the
    help (all modules are imported to find the name, and to list them); a name no module
    defines is click's usage error, one line."""
    code = (
        "from duckpond.cli import app\n"
        "del app.COMMANDS['list-factories']\n"
        "app.cli.main(args=['list-factories', '--format', 'json'], prog_name='pond',"
        " standalone_mode=False)"
    )
    factories = json.loads(_probe(code))
    assert "command" in [f["name"] for f in factories]
    listed = (
        "from duckpond.cli import app\n"
        "del app.COMMANDS['list-factories']\n"
        "print('list-factories' in app.cli.list_commands(None))"
    )
    assert _probe(listed) == "True\n"  # and so in `pond --help`
    proc = run_pond("no-such-command", check=2)
    assert proc.stdout == b""
    assert proc.stderr.decode() == "error: No such command 'no-such-command'.\n"
