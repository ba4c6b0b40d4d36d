"""Query layer: source URLs, host ingest (Parquet/CSV), DataFusion SQL and result rendering.

Depends only on duckpond.errors, so storage and the steward can both build on it.
"""

from .ingest import (
    csv_to_parquet_file,
    decompress_bytes,
    detect_time_column,
    event_time_range,
    event_time_range_parquet,
    read_csv_bytes,
    read_csv_file,
    read_host_bytes,
    read_parquet_bytes,
    read_parquet_file,
    read_parquet_schema,
    table_to_parquet_bytes,
)
from .output import (
    column_values,
    format_value,
    print_table,
    to_csv_bytes,
    to_json_records,
    to_json_text,
    to_parquet_bytes,
)
from .urls import SourceURL, is_host, parse_source

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

_SQL_NAMES = {
    "SOURCE_NAMES",
    "Part",
    "make_context",
    "plain_types",
    "register_parts",
    "register_table_arrow",
    "run_sql",
}


def __getattr__(name: str) -> object:
    # DataFusion takes ~170 ms to import: load it only for commands that run SQL.
    if name == "sql" or name in _SQL_NAMES:
        import importlib

        sql = importlib.import_module(".sql", __name__)
        return sql if name == "sql" else getattr(sql, name)
    raise AttributeError(name)
