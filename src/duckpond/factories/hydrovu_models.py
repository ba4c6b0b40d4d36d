"""`hydrovu`: its config, and how HydroVu readings become one series version.

The config is checked with its `${env:...}` references unexpanded (the steward expands
them at run time and redacts their values from everything the run says)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import paths
from ..errors import FactoryError, PondError
from .base import Fields

NAME = "hydrovu"
DEFAULT_BASE_URL = "https://www.hydrovu.com"
TIME_COLUMN = "timestamp"
TIME_TYPE = pa.timestamp("us", tz="UTC")
_ENV_ONLY = re.compile(r"^\$\{env:[A-Za-z_][A-Za-z0-9_]*\}$")


@dataclass(frozen=True)
class Device:
    name: str
    id: int
    active: bool

    def dir(self, hydrovu_path: str) -> str:
        return paths.join(hydrovu_path, "devices", str(self.id))

    def active_series(self, hydrovu_path: str) -> str:
        return paths.join(self.dir(hydrovu_path), f"{self.name}_active.series")


@dataclass(frozen=True)
class Settings:
    """A validated config. `client_id`/`client_secret` hold `${env:NAME}` references when
    validated and their values once the steward expanded them for a run."""

    hydrovu_path: str
    devices: list[Device]
    max_points_per_run: int
    client_id: str
    client_secret: str
    base_url: str
    archive_path: str | None
    timeout: float  # seconds one HTTP request may take
    max_retries: int  # further attempts after a 429 or 5xx answer
    max_retry_wait: float  # cap (seconds) of one backoff, also of a Retry-After


def parse(config: dict[str, Any], expanded: bool = False) -> Settings:
    """A config as Settings; FactoryError naming the first problem. `expanded`: the
    steward already replaced the `${env:...}` references with their values."""
    f = Fields(NAME, config)
    num = (int, float)
    settings = Settings(
        hydrovu_path=_pond_path(f.get("hydrovu_path", str, required=True), "hydrovu_path"),
        devices=_devices(f.get("devices", list, required=True)),
        max_points_per_run=f.get("max_points_per_run", int, required=True),
        client_id=_credential(f.get("client_id", str, required=True), "client_id", expanded),
        client_secret=_credential(
            f.get("client_secret", str, required=True), "client_secret", expanded
        ),
        base_url=f.get("base_url", str, DEFAULT_BASE_URL).rstrip("/"),
        archive_path=_optional_path(f.get("archive_path", str, None)),
        timeout=float(f.get("timeout", num, 60.0)),
        max_retries=f.get("max_retries", int, 4),
        max_retry_wait=float(f.get("max_retry_wait", num, 60.0)),
    )
    f.done()
    if settings.max_points_per_run <= 0:
        raise FactoryError(f"{NAME}: 'max_points_per_run' must be positive")
    if not settings.base_url.startswith(("http://", "https://")):
        raise FactoryError(f"{NAME}: 'base_url' must be an http:// or https:// URL")
    if settings.timeout <= 0:
        raise FactoryError(f"{NAME}: 'timeout' must be positive (seconds)")
    if settings.max_retries < 0 or settings.max_retry_wait < 0:
        raise FactoryError(f"{NAME}: 'max_retries' and 'max_retry_wait' must not be negative")
    return settings


def _pond_path(value: str, key: str) -> str:
    if not value.startswith("/"):
        raise FactoryError(f"{NAME}: '{key}' must be an absolute pond path, got {value!r}")
    try:
        return paths.normalize(value)
    except PondError as e:
        raise FactoryError(f"{NAME}: '{key}': {e}") from None


def _optional_path(value: str | None) -> str | None:
    return None if value is None else _pond_path(value, "archive_path")


def _credential(value: str, key: str, expanded: bool) -> str:
    if expanded:
        if not value:
            raise FactoryError(f"{NAME}: '{key}' is empty once its environment variable is read")
        return value
    # A literal would be stored in the pond's history for ever: only a reference is kept,
    # and the literal is never echoed back.
    if not _ENV_ONLY.match(value):
        raise FactoryError(
            f"{NAME}: '{key}' must be an environment reference such as "
            "'${env:HYDROVU_CLIENT_SECRET}', not a literal value (it would be stored in the pond)"
        )
    return value


def _devices(raw: list[Any]) -> list[Device]:
    if not raw:
        raise FactoryError(f"{NAME}: 'devices' must list at least one device")
    out: list[Device] = []
    for item in raw:
        if not isinstance(item, dict):
            raise FactoryError(f"{NAME}: each device is a mapping {{name, id, active}}")
        f = Fields(f"{NAME} device", item)
        name = f.get("name", str, required=True)
        dev_id = f.get("id", int, required=True)
        active = f.get("active", bool, True)
        f.get("comment", str, None)
        f.done()
        try:
            if not name or "/" in name:
                raise PondError("empty or with '/'")
            paths.check_new_name(f"{name}_active.series")
        except PondError as e:
            raise FactoryError(f"{NAME}: device name {name!r} cannot name a file: {e}") from None
        if dev_id <= 0:
            raise FactoryError(f"{NAME}: device {name!r}: 'id' must be positive")
        out.append(Device(name, dev_id, active))
    for attr in ("name", "id"):
        seen = [getattr(d, attr) for d in out]
        dups = sorted({str(v) for v in seen if seen.count(v) > 1})
        if dups:
            raise FactoryError(f"{NAME}: device {attr} listed twice: {', '.join(dups)}")
    return out


@dataclass
class Readings:
    """One device's fetched readings, merged over pages by (parameter, unit) id; kept as
    the pages' reading lists and converted in one go (`to_table`)."""

    series: dict[tuple[str, str], list[list[Any]]]
    count: int = 0

    @classmethod
    def empty(cls) -> Readings:
        return cls({})

    def add_page(self, body: Any, where: str) -> None:
        """Merge one readings page; FactoryError when its shape is wrong."""
        try:
            for p in body["parameters"]:
                key = (str(p["parameterId"]), str(p["unitId"]))
                readings = p["readings"]
                if not isinstance(readings, list):
                    raise TypeError("'readings' is not a list")
                self.series.setdefault(key, []).append(readings)
                self.count += len(readings)
        except (KeyError, TypeError, ValueError) as e:
            raise FactoryError(f"unexpected readings from {where}: {_reason(e)}") from None


Column = tuple[np.ndarray, pa.Array]  # distinct timestamps (s, first kept), their values


def to_table(
    readings: Readings, names: dict[str, dict[str, str]], drop_newest: bool = False
) -> pa.Table | None:
    """Wide rows: one per distinct timestamp (ascending), one Float64 column per
    `<parameter>.<unit>` (friendly names, else the raw ids); the first reading of a
    parameter at a timestamp wins. `drop_newest`: leave out the newest timestamp (paging
    stopped at the point cap, so its other parameters may be on the next page: the next
    run fetches it whole), unless it is the only one. None when there is nothing to write."""
    columns: dict[str, Column] = {}
    for (param, unit), pages in readings.series.items():
        name = f"{names['parameters'].get(param, param)}.{names['units'].get(unit, unit)}"
        if name == TIME_COLUMN:
            raise FactoryError(f"a HydroVu parameter is named like the time column: {name!r}")
        ts, values = _column(pages)
        if len(ts) == 0:
            continue  # a parameter without readings makes no column
        if name in columns:  # two ids with one friendly name: the first reading still wins
            old_ts, old_values = columns[name]
            ts = np.concatenate([old_ts, ts])
            values = pa.concat_arrays([old_values, values])
        first, idx = np.unique(ts, return_index=True)
        columns[name] = (first, values.take(pa.array(idx)))
    if not columns:
        return None
    stamps = np.unique(np.concatenate([ts for ts, _ in columns.values()]))
    if drop_newest and len(stamps) > 1:
        stamps = stamps[:-1]
    if len(stamps) == 0:
        return None
    arrays: list[pa.Array] = [pa.array(stamps * 1_000_000, pa.int64()).cast(TIME_TYPE)]
    fields = [pa.field(TIME_COLUMN, TIME_TYPE, nullable=False)]
    for name in sorted(columns):
        ts, values = columns[name]
        # where each stamp's reading is in this column's (sorted) timestamps, if it has one
        pos = np.minimum(np.searchsorted(ts, stamps), len(ts) - 1)
        found = ts[pos] == stamps
        picked = values.take(pa.array(pos))
        arrays.append(pc.if_else(pa.array(found), picked, pa.nulls(len(stamps), pa.float64())))
        fields.append(pa.field(name, pa.float64()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _column(pages: list[list[Any]]) -> tuple[np.ndarray, pa.Array]:
    """One parameter's readings as (timestamps in s, values). Plain comprehensions: Arrow's
    conversion of a list of dicts to a struct array is ~20x slower."""
    try:
        ts = pa.array([r["timestamp"] for page in pages for r in page], pa.int64())
        values = pa.array([r["value"] for page in pages for r in page], pa.float64())
    except KeyError as e:
        raise FactoryError(f"unexpected readings: a reading without {e}") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as e:
        raise FactoryError(f"unexpected readings: {_reason(e)}") from None
    if ts.null_count:
        raise FactoryError("unexpected readings: a reading without a timestamp")
    return ts.to_numpy(), values


def friendly_names(body: Any, where: str) -> dict[str, dict[str, str]]:
    """{'parameters': {id: name}, 'units': {id: name}} from the friendlynames answer."""
    try:
        return {
            kind: {str(k): str(v) for k, v in body[kind].items()}
            for kind in ("parameters", "units")
        }
    except (KeyError, TypeError, AttributeError) as e:
        raise FactoryError(f"unexpected friendly names from {where}: {_reason(e)}") from None


def _reason(e: BaseException) -> str:
    if isinstance(e, KeyError):
        return f"missing key {e}"
    return " ".join(str(e).split())[:200]
