"""Issue 17 item 10a/b: a template's rendering is bounded (`*`, `**`, `+`, `%`, `~`, string
formatting, the filters and methods that take a width or a count, block buffers, the text of a
value, range, recursion, output size) and self-contained (no include/import/extends); each limit
is a one-line error naming it, never an "internal error" or gigabytes of memory. Run through the
real CLI, its memory watched (see test_query_spill.run_watched)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import CLI, cli_env
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
    # a string doubled in a loop, by ~ and by +
    (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s|length }}",
        "'~' would make 16,777,216 characters (limit 10,000,000)",
    ),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}{{ ns.s|length }}",
        "'+' would make 16,777,216 items",
    ),
    (
        "{% set ns = namespace(n=2 ** 49999) %}{% for i in range(30) %}{% set ns.n = ns.n * ns.n %}"
        "{% endfor %}",
        "'*' would make 199,998 bits (limit 100,000)",
    ),
    ("{{ range(100000)|join('y' * 100000) }}", "join would make 10,000,"),
    ("{{ ('x' * 1000000).join(['y'] * 1000) }}", "str.join would make 1,000,"),
    # string formatting: a huge width, or a field repeated
    ("{{ '%3000000000d' % 1 }}", "'%' would make 3,000,000,0"),
    ("{{ '%*d' % (3000000000, 1) }}", "'%' would make 3,000,000,0"),
    ("{{ ('%(a)9000000d' * 1000) % {'a': 1} }}", "'%' would make 18,0"),
    ("{{ '%3000000000d'|format(1) }}", "filter 'format' would make 3,000,000,0"),
    ("{{ '{:>3000000000}'.format(1) }}", "str.format would make 3,000,000,0"),
    ("{{ ('{0:>9000000}' * 1000).format(1) }}", "str.format would make 18,0"),
    ("{{ '{a:>3000000000}'.format_map({'a': 1}) }}", "str.format would make 3,000,000,0"),
    # filters and methods whose result grows with a width, a count or a second text
    ("{{ 'a'|center(3000000000) }}", "filter 'center' would make 3,000,000,000 items"),
    ("{{ ('x\n' * 1000000)|indent(3000) }}", "filter 'indent' would make 3,002,"),
    ("{{ ('a ' * 1000000)|wordwrap(1, wrapstring='y' * 1000) }}", "filter 'wordwrap' would make"),
    ("{{ ('x' * 9000000)|truncate(10 ** 7, end='y' * 9000000) }}", "filter 'truncate' would make"),
    (
        "{% set s = 'x' * 1000000 %}{{ s|replace('x', s) }}",
        "filter 'replace' would make 1,000,000,000,000 items",
    ),
    ("{% set s = 'x' * 1000000 %}{{ s.replace('x', s) }}", "str.replace would make 1,000,000,0"),
    ("{{ 'x'.ljust(3000000000) }}", "str.ljust would make 3,000,000,000 items"),
    ("{{ 'x'.rjust(3000000000) }}", "str.rjust would make 3,000,000,000 items"),
    ("{{ 'x'.center(3000000000) }}", "str.center would make 3,000,000,000 items"),
    ("{{ 'x'.zfill(3000000000) }}", "str.zfill would make 3,000,000,000 items"),
    ("{{ 'a\tb'.expandtabs(3000000000) }}", "str.expandtabs would make 3,000,000,00"),
    ("{{ 'x'.encode().ljust(3000000000) }}", "bytes.ljust would make 3,000,000,000 items"),
    ("{{ ('x' * 1000000).translate({120: 'y' * 1000}) }}", "str.translate would make 1,000,0"),
    ("{{ [1]|batch(3000000000, 0)|list }}", "filter 'batch' would make 3,000,000,000 items"),
    ("{{ [1]|slice(3000000000)|list }}", "filter 'slice' would make 3,000,000,000 items"),
    ("{{ ([[0] * 1000000] * 100)|sum(start=[]) }}", "sum would make 100,000,000 items"),
    (
        "{% set ns = namespace(l=[0]) %}{% for i in range(40) %}{% set _ = ns.l.extend(ns.l) %}"
        "{% endfor %}",
        "list.extend would make 16,777,216 items",
    ),
    ("{{ lipsum(3000000000) }}", "lipsum would make"),
    # the text of a value (a list of big strings), and a block's buffer (a macro's output)
    ("{{ ['x' * 1000000] * 1000 }}", "the text of a value is over 10,000,000 characters"),
    ("{{ (['x' * 1000000] * 1000)|string }}", "filter 'string': the text of a value is over"),
    (
        "{% macro m() %}{% for i in range(100000) %}{% for j in range(100000) %}{{ 'x' * 1000 }}"
        "{% endfor %}{% endfor %}{% endmacro %}{{ m()|length }}",
        "a block would make 10,001,000 characters",
    ),
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


SMALL = (
    "{{ 'x' ~ 1 ~ [2] }}|{{ 'ab' + 'c' }}|{{ '%05d' % 3 }}|{{ '%-3s|' % 'a' }}{{ '%s'|format(4) }}|"
    "{{ '{:>4}'.format(1) }}|{{ '{a:03}'.format_map({'a': 7}) }}|{{ 'x'|center(5) }}|"
    "{{ 'a\nb'|indent(2, true) }}|{{ 'a b c'|wordwrap(3) }}|{{ 'abcdefghij'|truncate(8) }}|"
    "{{ 'abc'|replace('b', 'BB') }}|{{ 'abc'.replace('b', '-') }}|{{ ['a', 'b']|join(',') }}|"
    "{{ ','.join(['c', 'd']) }}|{{ 'x'.ljust(3) }}|{{ 'x'.rjust(3) }}|{{ '7'.zfill(3) }}|"
    "{{ 'a\tb'.expandtabs(2) }}|{{ [1, 2, 3]|batch(2, 0)|list }}|{{ [1, 2, 3]|slice(2)|list }}|"
    "{{ [[1], [2]]|sum(start=[]) }}|{{ [1, 2]|tojson }}|{{ 3 * 4 }}|{{ 2 ** 10 }}|"
    "{% set ns = namespace(l=[1]) %}{% set _ = ns.l.extend([2]) %}{{ ns.l }}|"
    "{% macro m(n) %}<{{ n }}>{% endmacro %}{{ m(5) }}|{% set b %}xy{% endset %}{{ b }}|{{ name }}"
)
SMALL_TEXT = (
    "x1[2]|abc|00003|a  |4|   1|007|  x  |  a\n  b|a b\nc|abcdefghij|aBBc|a-c|a,b|c,d|x  |  x|007|"
    "a b|[[1, 2], [3, 0]]|[[1, 2], [3]]|[1, 2]|[1, 2]|12|1024|[1, 2]|<5>|xy|a"
)


def test_a_template_using_these_features_at_small_sizes_renders(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    pond = Pond.create(root)
    with pond.transaction() as tx:
        tx.write_bytes("/s/a", b"1", parents=True)
    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        yaml.safe_dump({"in_pattern": "/s/*", "out_pattern": "$0.txt", "template": SMALL})
    )
    pond_args = [*CLI, "--pond", str(root)]
    made = subprocess.run(
        [*pond_args, "mknod", "template", "/t", "--config-path", str(cfg)],
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    cat = subprocess.run(
        [*pond_args, "cat", "/t/a.txt"], env=cli_env(), capture_output=True, text=True
    )
    assert cat.returncode == 0, cat.stderr
    assert cat.stdout == SMALL_TEXT
