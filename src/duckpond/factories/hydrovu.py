"""`hydrovu`: collect a water-quality instrument vendor's readings (HydroVu) into series.

`pond run NODE collect` fetches, for each active device, the readings since the newest time
the pond holds for it (+1 s; nothing is kept outside the pond) and stages them as ONE new
version of `{hydrovu_path}/devices/{id}/{name}_active.series`. The whole run is one write
transaction, and a device is staged only once all its pages arrived and converted: a device
that fails stages nothing, so the others commit and its series stays as it was; the run
then fails (PartialFailure) naming it, and the next run fetches it from where it stopped.
An authentication failure stops the run before anything is staged.

`pond run NODE archive [--device NAME]` compacts each device's active series into one new
single-version `{name}_archive_YYYYMMDD.series` (UTC day) and removes the active entry;
the next collect starts after the archive's newest time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .. import paths
from ..errors import FactoryError, PondError
from .base import Factory, PartialFailure, RunContext
from .hydrovu_client import HydroVuAuthError, HydroVuClient
from .hydrovu_models import NAME, TIME_COLUMN, Device, Settings, parse, to_table
from .registry import register

USAGE = "usage: pond run NODE collect | pond run NODE archive [--device NAME]"


class HydroVu(Factory):
    name = NAME
    description = (
        "Collects HydroVu instrument readings: `pond run NODE collect` appends one series "
        "version per device (`hydrovu_path`/devices/ID/NAME_active.series, columns "
        "timestamp and <parameter>.<unit>) from the newest stored time + 1 s; "
        "`pond run NODE archive [--device NAME]` compacts them. Config: `hydrovu_path`, "
        "`devices: [{name, id, active}]`, `max_points_per_run`, `client_id` and "
        "`client_secret` (${env:NAME} references), `base_url`, `archive_path`, `timeout`, "
        "`max_retries`, `max_retry_wait`."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        parse(config)
        return config

    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        settings = parse(config, expanded=True)
        command, device = _command(ctx.args)
        if command == "collect":
            collect(settings, ctx)
        else:
            archive(settings, ctx, device)


def _command(args: list[str]) -> tuple[str, str | None]:
    if not args or args[0] not in ("collect", "archive"):
        raise FactoryError(USAGE)
    rest = args[1:]
    device: str | None = None
    if args[0] == "archive" and rest:
        if len(rest) == 2 and rest[0] == "--device":
            device = rest[1]
        elif len(rest) == 1 and rest[0].startswith("--device="):
            device = rest[0].split("=", 1)[1]
        else:
            raise FactoryError(USAGE)
    elif rest:
        raise FactoryError(USAGE)
    return args[0], device


# -- collect --------------------------------------------------------------------------------


def collect(settings: Settings, ctx: RunContext) -> None:
    active = [d for d in settings.devices if d.active]
    failed: list[str] = []
    written = total = 0
    with HydroVuClient(settings, ctx.log) as client:
        client.authenticate()
        names = client.friendly_names()
        for dev in active:
            label = f"device {dev.name} ({dev.id})"
            try:
                start = start_time(settings, dev, ctx)
                readings, capped = client.readings(dev.id, start, settings.max_points_per_run)
                table = to_table(readings, names, drop_newest=capped)
                if table is not None:
                    ctx.write_series(dev.active_series(settings.hydrovu_path), table, TIME_COLUMN)
            except HydroVuAuthError:
                raise
            except PondError as e:  # FactoryError included: this device only
                failed.append(f"{label}: {e}")
                ctx.warn(f"{label} failed, its series is unchanged: {e}")
                continue
            if table is None:
                ctx.log(f"{label}: no new readings since {_iso(start)}")
                continue
            written += 1
            total += readings.count
            first, last = _span(table)
            more = " (point cap reached: the next run continues)" if capped else ""
            ctx.log(
                f"{label}: {readings.count} readings, {table.num_rows} rows "
                f"from {first} to {last}{more}"
            )
    ctx.log(f"HydroVu collection complete: {total} readings from {written} device(s)")
    if failed:
        msg = f"{len(failed)} of {len(active)} device(s) failed: " + "; ".join(failed)
        if written:
            raise PartialFailure(f"{msg} (the other devices' readings were committed)")
        raise FactoryError(msg)


def start_time(settings: Settings, dev: Device, ctx: RunContext) -> int:
    """Unix seconds to ask from: the newest time stored for the device (any *.series in
    its directory, archives too) + 1 s; else the seed archive's newest + 1 s; else 0."""
    folder = dev.dir(settings.hydrovu_path)
    newest: int | None = None
    for name in ctx.list_dir(folder) or []:
        if name.endswith(".series"):
            t = ctx.series_max_time(paths.join(folder, name))
            if t is not None and (newest is None or t > newest):
                newest = t
    if newest is not None:
        return newest // 1_000_000 + 1
    if settings.archive_path is None:
        return 0
    seed_dir = paths.join(settings.archive_path, "devices", str(dev.id))
    seed: int | None = None
    for name in ctx.list_dir(seed_dir) or []:
        if name.endswith(".series"):
            t = _max_seconds(ctx.read_table(paths.join(seed_dir, name)))
            if t is not None and (seed is None or t > seed):
                seed = t
    if seed is None:
        raise FactoryError(
            f"no readings in the pond and no resume point in the seed archive {seed_dir}; "
            "refusing to fetch HydroVu from the epoch"
        )
    return seed + 1


def _max_seconds(table: pa.Table) -> int | None:
    """The newest `timestamp` of a seed archive in Unix seconds (an integer column is
    seconds already)."""
    if TIME_COLUMN not in table.column_names or table.num_rows == 0:
        return None
    col = table.column(TIME_COLUMN)
    top = pc.max(col)
    if not top.is_valid:
        return None
    if pa.types.is_integer(col.type):
        return int(top.as_py())
    if pa.types.is_timestamp(col.type):
        micros = pc.cast(top, pa.timestamp("us", tz="UTC")).cast(pa.int64()).as_py()
        return int(micros) // 1_000_000
    return None


def _span(table: pa.Table) -> tuple[str, str]:
    micros = table.column(TIME_COLUMN).cast(pa.int64())
    return _iso(micros[0].as_py() // 1_000_000), _iso(micros[-1].as_py() // 1_000_000)


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- archive --------------------------------------------------------------------------------


def archive(settings: Settings, ctx: RunContext, only: str | None) -> None:
    devices = settings.devices
    if only is not None:
        devices = [d for d in devices if only in (d.name, str(d.id))]
        if not devices:
            known = ", ".join(d.name for d in settings.devices)
            raise FactoryError(f"no device named {only!r} in this node (devices: {known})")
    today = datetime.now(UTC).strftime("%Y%m%d")
    archived: list[str] = []
    for dev in devices:
        label = f"device {dev.name} ({dev.id})"
        folder = dev.dir(settings.hydrovu_path)
        names = ctx.list_dir(folder)
        if names is None:
            ctx.warn(f"{label}: {folder} does not exist; nothing to archive")
            continue
        candidates = (f"{dev.name}_active.series", f"{dev.name}.series")  # .series: legacy
        source = next((n for n in candidates if n in names), None)
        if source is None:
            ctx.log(f"{label}: no active series; nothing to archive")
            continue
        target = paths.join(folder, f"{dev.name}_archive_{today}.series")
        if paths.basename(target) in names:
            ctx.warn(f"{label}: {target} exists (one archive per device per day); skipped")
            continue
        table = ctx.read_table(paths.join(folder, source))
        if table.num_rows == 0:
            ctx.log(f"{label}: {source} holds no rows; kept")
            continue
        # the versions' columns merged, in the order collect writes them: time, then by name
        order = [TIME_COLUMN, *sorted(n for n in table.column_names if n != TIME_COLUMN)]
        ctx.write_series(target, table.select(order).sort_by(TIME_COLUMN), TIME_COLUMN)
        ctx.remove(paths.join(folder, source))
        archived.append(target)
        ctx.log(f"{label}: {table.num_rows} rows of {source} -> {target}")
    ctx.log(f"Archived {len(archived)} series files.")
    for target in archived:
        ctx.log(f"  pond copy '{target}' host:///DEST")  # a host copy, if wanted


FACTORY = HydroVu()
register(FACTORY)
