"""Format URLs: the grammar `[host+]FORMAT[+COMPRESSION][+ENTRYTYPE]:///PATH[?OPTIONS]`, the
bounds on decompression, and a format added by a plugin through the registry."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import run_pond

from duckpond import formats
from duckpond.errors import FormatError, PondUsageError
from duckpond.formats import Format, Parsed
from duckpond.formats.compression import decompress
from duckpond.query.urls import SourceURL, parse_source


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("oteljson:///ingest/m.json", SourceURL("oteljson", "/ingest/m.json", "oteljson")),
        (
            "oteljson+bzip2:///ingest/metrics-*.json.bz2",
            SourceURL("oteljson", "/ingest/metrics-*.json.bz2", "oteljson", None, "bzip2"),
        ),
        (
            "host+oteljson+gzip+series:///x.json.gz",
            SourceURL("host", "/x.json.gz", "oteljson", "series", "gzip"),
        ),
        ("host+weblog:///var/log/a.log", SourceURL("host", "/var/log/a.log", "weblog")),
        ("jsonlogs:///l/a?.json", SourceURL("jsonlogs", "/l/a?.json", "jsonlogs")),
        (
            "csv:///x.csv?delimiter=;&header=false",
            SourceURL("csv", "/x.csv", "csv", options=(("delimiter", ";"), ("header", "false"))),
        ),
        (
            "host+csv+table:///x?.csv?delimiter=%09",
            SourceURL("host", "/x?.csv", "csv", "table", options=(("delimiter", "\t"),)),
        ),
        ("host+table+bzip2:///x.pq.bz2", SourceURL("host", "/x.pq.bz2", "table", "table", "bzip2")),
    ],
)
def test_format_urls(url: str, expected: SourceURL) -> None:
    assert parse_source(url) == expected


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("gzip:///p", "a compression cannot be the first word"),
        ("oteljson+gzip+zstd:///p", "more than one compression"),
        ("oteljson+banana:///p", "unknown URL modifier 'banana'"),
        ("host+oteljson+table+series:///p", "more than one of table/series"),
        ("host+gzip+oteljson:///p", "must follow a format"),
        ("host+table+weblog:///p", "must come first"),
        ("oteljson://host/p", "three slashes"),
        ("weblog:///p?delimiter=x", "unknown option 'delimiter' for format weblog"),
    ],
)
def test_bad_format_urls(url: str, fragment: str) -> None:
    with pytest.raises(PondUsageError) as exc:
        parse_source(url)
    assert fragment in str(exc.value)


def test_decompression_is_bounded() -> None:
    bomb = gzip.compress(b"\0" * (4 << 20))
    with pytest.raises(FormatError, match="expands to more than 1 MiB"):
        decompress(bomb, "gzip", "bomb.gz", limit=1 << 20)
    assert len(decompress(bomb, "gzip", "bomb.gz", limit=8 << 20)) == 4 << 20


def _pairs(data: bytes, options: formats.Options, what: str) -> Parsed:
    """A plugin's format: `key=value` lines."""
    skipped = formats.Skipped()
    keys, values = [], []
    for number, line in enumerate(data.decode().splitlines(), start=1):
        key, sep, value = line.partition("=")
        if not sep:
            skipped.add(number, "no '='")
            continue
        keys.append(key)
        values.append(value)
    return Parsed(pa.table({"key": keys, "value": values}), skipped)


def test_a_plugin_format_is_read_through_urls(tmp_path: Path) -> None:
    """A format registered in the registry is a URL scheme like the builtin ones."""
    formats.register(Format("pairs", _pairs, "key=value lines"))
    try:
        f = tmp_path / "x.txt"
        f.write_text("a=1\nb=2\n")
        from duckpond.pond import read_source

        assert read_source(f"host+pairs://{f}", None).to_pylist() == [
            {"key": "a", "value": "1"},
            {"key": "b", "value": "2"},
        ]
        with pytest.raises(ValueError, match="already registered"):
            formats.register(Format("pairs", _pairs, "again"))
    finally:
        formats._REGISTRY.pop("pairs", None)
    # not registered in a fresh process: an unknown scheme, exit 2
    out = run_pond("cat", f"host+pairs://{f}", check=2)
    assert "unknown URL modifier 'pairs'" in out.stderr.decode()


def test_describe_a_format_url_without_a_pond(tmp_path: Path) -> None:
    f = tmp_path / "access.log"
    f.write_text('::1 - - [02/Feb/2025:07:31:00 +0000] "HEAD / HTTP/1.1" 204 -\n')
    d = json.loads(run_pond("describe", f"host+weblog://{f}", "--format", "json").stdout)
    assert d["type"] == "host"
    assert [c["name"] for c in d["schema"]][:3] == ["timestamp", "remote_addr", "remote_user"]
    # the column a copy into a series would index by (Python API)
    from duckpond.pond import describe_source

    assert describe_source(f"host+weblog://{f}", None).time_column == "timestamp"
