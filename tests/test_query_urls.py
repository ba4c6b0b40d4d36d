from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duckpond.errors import PondUsageError
from duckpond.query.urls import SourceURL, is_host, parse_source


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/a/b.csv", SourceURL("pond", "/a/b.csv", "raw", None, None)),
        ("csv:///a/b.csv", SourceURL("csv", "/a/b.csv", "csv", None, None)),
        ("csv+gzip:///a/b.csv.gz", SourceURL("csv", "/a/b.csv.gz", "csv", None, "gzip")),
        ("host:///tmp/x.bin", SourceURL("host", "/tmp/x.bin", "raw", None, None)),
        ("host+table:///x.parquet", SourceURL("host", "/x.parquet", "table", "table", None)),
        ("host+series:///x.parquet", SourceURL("host", "/x.parquet", "series", "series", None)),
        ("host+csv:///x.csv", SourceURL("host", "/x.csv", "csv", None, None)),
        ("host+csv+table:///x.csv", SourceURL("host", "/x.csv", "csv", "table", None)),
        ("host+csv+series:///x.csv", SourceURL("host", "/x.csv", "csv", "series", None)),
        ("host+csv+gzip+table:///x.csv.gz", SourceURL("host", "/x.csv.gz", "csv", "table", "gzip")),
        ("host+csv+table+gzip:///x.csv.gz", SourceURL("host", "/x.csv.gz", "csv", "table", "gzip")),
        ("host+csv+zstd:///x.csv.zst", SourceURL("host", "/x.csv.zst", "csv", None, "zstd")),
        ("host+csv+series+zstd:///d/x", SourceURL("host", "/d/x", "csv", "series", "zstd")),
        ("host+table+zstd:///x.pq.zst", SourceURL("host", "/x.pq.zst", "table", "table", "zstd")),
        ("HOST+Table:///x.parquet", SourceURL("host", "/x.parquet", "table", "table", None)),
        ("host:///", SourceURL("host", "/", "raw", None, None)),
        ("host:///dir with space/ü.txt", SourceURL("host", "/dir with space/ü.txt")),
        ("/data/2024-01-01T00:00", SourceURL("pond", "/data/2024-01-01T00:00")),
    ],
)
def test_valid_forms(url: str, expected: SourceURL) -> None:
    assert parse_source(url) == expected


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("host://relative/path", "three slashes"),
        ("host:", "names no file"),
        ("csv://x", "three slashes"),
        ("s3://bucket/key", "unknown URL scheme 's3'"),
        ("file:///etc/passwd", "unknown URL scheme 'file'"),
        ("host+parquet:///x", "unknown URL modifier 'parquet'"),
        ("host+table+series:///x", "more than one of table/series"),
        ("host+csv+gzip+zstd:///x", "more than one compression"),
        ("host+gzip:///x", "must follow a format"),
        ("host+gzip+csv:///x", "must follow a format"),
        ("host+table+csv:///x", "must come first"),
        ("host++table:///x", "empty modifier"),
        ("csv+table:///x", "unknown URL modifier 'table'"),
        ("", "empty source"),
    ],
)
def test_invalid_forms(url: str, fragment: str) -> None:
    with pytest.raises(PondUsageError) as exc:
        parse_source(url)
    msg = str(exc.value)
    assert fragment in msg
    assert "\n" not in msg
    # the message teaches the valid forms
    assert "host+csv+table:///x.csv" in msg


def test_unknown_scheme_exit_code_is_usage() -> None:
    with pytest.raises(PondUsageError) as exc:
        parse_source("ftp:///x")
    assert exc.value.exit_code == 2


def test_is_host() -> None:
    assert is_host("host:///x")
    assert is_host("host+csv+table:///x")
    assert is_host("host://bad")  # syntax is parse_source's job; is_host never raises
    assert not is_host("/a/b")
    assert not is_host("csv:///a")
    assert not is_host("hostile:///x")
    assert not is_host("")
    assert parse_source("host+table:///x").is_host


@given(st.text(alphabet=st.characters(exclude_characters="\x00"), min_size=0, max_size=40))
def test_host_path_round_trip(tail: str) -> None:
    path = "/" + tail
    src = parse_source("host://" + path)
    assert src.scheme == "host" and src.path == path and src.fmt == "raw"
    assert parse_source(path) == SourceURL("pond", path)


def test_host_paths_without_three_slashes_resolve_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_source("host:relative").path == str(tmp_path / "relative")
    assert parse_source("host:../up/x.csv").path == str(tmp_path.parent / "up" / "x.csv")
    assert parse_source("host:/abs").path == "/abs"
    got = parse_source("host+csv+table:d/x.csv?delimiter=;")
    assert (got.path, got.fmt, got.entry, got.options) == (
        str(tmp_path / "d" / "x.csv"),
        "csv",
        "table",
        (("delimiter", ";"),),
    )
