"""`export`: the post-commit job that keeps a published copy of series fresh.

Put its node under /etc/system.d/ (e.g. /etc/system.d/20-export): after every write it
exports the series its `patterns` match into `dir`, redoing only those whose content
changed since the last export there. Export-layer code, registered as the `export` entry
point of `duckpond.factories` (pyproject.toml); it reads the pond through the view its
RunContext hands over (the steward holds the write lock, so the pond cannot change under
it) and writes nothing into the pond. A destination that is down fails the task, never the
user's write; the next write (or `pond recover --retry-failed`) catches up.
"""

from __future__ import annotations

from typing import Any

from ..errors import FactoryError, PondError
from ..factories.base import Factory, Fields, RunContext
from .spec import FORMATS

_S3 = ("endpoint", "region", "access_key_id", "secret_access_key")


class ExportJob(Factory):
    name = "export"
    description = (
        "Keeps an export of series fresh after every write (put it under /etc/system.d/): "
        "`patterns` (pond paths or globs), `dir` (an absolute directory, file:///dir or "
        "s3://bucket/prefix), `format` parquet|delta (default parquet), `temporal` "
        "(year,month,day,hour prefix; default year,month; none), and for s3:// the remotes' "
        "`endpoint`, `region`, `access_key_id`, `secret_access_key` (an ${env:NAME} "
        "reference), `allow_http`, `timeout`. Only series that changed are rewritten."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        """A stored config: a secret must be an ${env:NAME} reference."""
        out = self._normalise(config)
        from ..remotes.config import check_secret

        try:
            check_secret(out["secret_access_key"])
        except PondError as e:
            raise FactoryError(f"{self.name}: {e}") from None
        return out

    def _normalise(self, config: dict[str, Any]) -> dict[str, Any]:
        from .spec import parse_dest, parse_temporal

        f = Fields(self.name, config)
        patterns = f.get("patterns", list, required=True)
        out: dict[str, Any] = {
            "patterns": patterns,
            "dir": f.get("dir", str, required=True),
            "format": f.get("format", str, default="parquet"),
            "temporal": f.get("temporal", (str, list), default=None),
            "allow_http": f.get("allow_http", bool, default=False),
            "timeout": f.get("timeout", (int, float), default=None),
        }
        for key in _S3:
            out[key] = f.get(key, str)
        f.done()
        if not patterns or not all(isinstance(p, str) and p.startswith("/") for p in patterns):
            raise FactoryError(f"{self.name}: 'patterns' must be a list of absolute pond paths")
        if out["format"] not in FORMATS:
            raise FactoryError(f"{self.name}: 'format' must be parquet or delta")
        try:
            parse_temporal(out["temporal"])
            d = out["dir"]
            if not d.startswith(("s3://", "file://", "${env:")) and not d.startswith("/"):
                raise FactoryError(f"{self.name}: 'dir' must be absolute, file:///dir or s3://...")
            if not d.startswith("${env:"):
                parse_dest(d)  # the S3 options are checked when the job runs
            from ..remotes.config import check_timeout

            check_timeout(out["timeout"])
        except FactoryError:
            raise
        except PondError as e:
            raise FactoryError(f"{self.name}: {e}") from None
        return out

    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        from ..storage.objstore import StoreOptions
        from .run import WRITTEN, export

        # references expanded by the steward already: a resolved secret is a literal now
        cfg = self._normalise(config)
        options = StoreOptions(
            **{key: cfg[key] for key in _S3},
            allow_http=cfg["allow_http"],
            timeout=None if cfg["timeout"] is None else float(cfg["timeout"]),
        )
        report = export(
            ctx.reader(),
            cfg["patterns"],
            cfg["dir"],
            fmt=cfg["format"],
            temporal=cfg["temporal"],
            options=options,
            missing_ok=True,  # a pattern that matches nothing yet is not an error here
            resolved=True,
        )
        written = [s.path for s in report.series if s.status == WRITTEN]
        ctx.log(
            f"export: {len(written)} of {len(report.series)} series written to {report.dir} "
            f"(txn_seq {report.txn_seq})"
        )


FACTORY = ExportJob()
