"""Issue 17 item 10a/b: a template's rendering is bounded (`*`, `**`, `+`, range, recursion,
output size) and self-contained (no include/import/extends); each limit is a one-line error
naming it, never an "internal error" or gigabytes of memory. Run through the real CLI, its
memory watched (see test_query_spill.run_watched)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_query_spill import run_watched

from duckpond.pond import Pond

CASES = [
    ("{{ 'x' * 3000000000 }}", "'*' would make 3,000,000,000 items (limit 10,000,000)"),
    ("{{ [0] * 10 ** 9 }}", "'*' would make 1,000,000,000 items"),
    ("{{ 7 ** 100000000 }}", "'**' result over 100,000 bits"),
    (
        "{% set ns = namespace(s='x' * 9000000) %}{{ ns.s + ns.s }}",
        "'+' would make 18,000,000 items",
    ),
    ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "output over 67,108,864"),
    ("{% for i in range(10 ** 9) %}{% endfor %}", "Range too big"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "recursion too deep"),
    ("{% include 'x.txt' %}", "line 1: include and import are not allowed"),
    ("{% import 'x.txt' as x %}", "include and import are not allowed"),
    ("{% from 'x.txt' import y %}", "include and import are not allowed"),
    ("a\n{% extends 'x.txt' %}", "line 2: extends is not allowed"),
]


@pytest.mark.parametrize(("template", "reason"), CASES)
def test_a_template_over_a_limit_is_a_one_line_error(
    tmp_path: Path, template: str, reason: str
) -> None:
    root = tmp_path / "pond"
    pond = Pond.create(root)
    with pond.transaction() as tx:
        tx.write_bytes("/s/a", b"1", parents=True)
    before = pond.data.version()
    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        yaml.safe_dump({"in_pattern": "/s/*", "out_pattern": "$0.txt", "template": template})
    )
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code, err = run_watched(
        ["--pond", str(root), "mknod", "template", "/t", "--config-path", str(cfg)], tmp
    )
    lines = err.splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert reason in lines[0] and "internal error" not in lines[0]
    assert Pond.open(root).data.version() == before


def test_a_template_within_the_limits_renders(tmp_path: Path) -> None:
    from duckpond.factories.template import render

    text = "{% macro f(n) %}{{ n }}{% if n %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}"
    assert render(text + "{{ 'ab' * 3 }}{{ 2 ** 10 }}{{ [1] + [2] }}", {}) == "3210ababab1024[1, 2]"
