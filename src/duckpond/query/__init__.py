"""Query layer: source URLs, host ingest (Parquet/CSV), format URLs, DuckDB SQL, result
rendering, and reading a source (sources.py, describe.py, formatread.py).

Depends only on the lowest layer (duckpond.errors, paths, nodes, results) and the format
readers (duckpond.formats), so storage and the steward can both build on it; the pond is
seen through protocols (pondview.SourcePond), never imported.
"""

__all__ = [
    "SOURCE_NAMES",
    "Part",
    "SourceURL",
    "column_values",
    "csv_to_parquet_file",
    "decompress_bytes",
    "detect_time_column",
    "event_time_range",
    "event_time_range_parquet",
    "format_value",
    "is_host",
    "make_context",
    "parse_source",
    "plain_types",
    "print_table",
    "read_csv_bytes",
    "read_csv_file",
    "read_host_bytes",
    "read_parquet_bytes",
    "read_parquet_file",
    "read_parquet_schema",
    "register_parts",
    "register_table_arrow",
    "run_sql",
    "table_to_parquet_bytes",
    "to_csv_bytes",
    "to_json_records",
    "to_json_text",
    "to_parquet_bytes",
]

# Every name loads its module on first use: pyarrow.compute and rich (output, ingest) and
# DuckDB (sql) are imported only by commands that need them, so that
# `pond list` or `pond cat FILE` start fast.
_MODULE_OF = {
    **dict.fromkeys(
        [
            "csv_to_parquet_file",
            "decompress_bytes",
            "detect_time_column",
            "event_time_range",
            "event_time_range_parquet",
            "read_csv_bytes",
            "read_csv_file",
            "read_host_bytes",
            "read_parquet_bytes",
            "read_parquet_file",
            "read_parquet_schema",
            "table_to_parquet_bytes",
        ],
        "ingest",
    ),
    **dict.fromkeys(
        [
            "column_values",
            "format_value",
            "print_table",
            "to_csv_bytes",
            "to_json_records",
            "to_json_text",
            "to_parquet_bytes",
        ],
        "output",
    ),
    **dict.fromkeys(["SourceURL", "is_host", "parse_source"], "urls"),
    **dict.fromkeys(
        [
            "SOURCE_NAMES",
            "Part",
            "make_context",
            "plain_types",
            "register_parts",
            "register_table_arrow",
            "run_sql",
        ],
        "sql",
    ),
}


def __getattr__(name: str) -> object:
    import importlib

    if name in ("ingest", "output", "sql", "urls"):
        return importlib.import_module(f".{name}", __name__)
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(f".{module}", __name__), name)
