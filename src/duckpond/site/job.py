"""`sitegen`: rebuild the pond's static site after every write (a post-commit job).

Site-layer code, registered as the `sitegen` entry point of `duckpond.factories`
(pyproject.toml). It builds from the read view its RunContext hands over (`ctx.reader()`:
the Pond whose steward runs the job, reading the pond as committed), never opening a
second pond while the steward holds the lock.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import FactoryError
from ..factories.base import Factory, RunContext


class SiteGen(Factory):
    name = "sitegen"
    description = (
        "Builds the pond's static site into `out_dir` (a host directory; only files earlier "
        "builds wrote are replaced; a failed build leaves the last good site): the "
        "`pond site build` config keys plus "
        "out_dir. Put it under /etc/system.d/ to keep the site fresh after every write."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        from . import config as site_config

        out_dir = config.get("out_dir")
        if not isinstance(out_dir, str) or not out_dir:
            raise FactoryError(f"{self.name}: config needs 'out_dir' (a host directory)")
        if not out_dir.startswith("${env:") and not os.path.isabs(out_dir):
            raise FactoryError(f"{self.name}: 'out_dir' must be an absolute host path")
        site_config.parse(config, self.name, extra=("out_dir",))
        return config

    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        from . import build
        from . import config as site_config

        self.validate(config)
        cfg = site_config.parse(config, self.name, extra=("out_dir",))
        report = build(ctx.reader(), config["out_dir"], cfg, ctx.parent_txn_seq)
        ctx.log(f"site: {len(report.series)} series, {report.bytes} bytes in {report.out_dir}")


FACTORY = SiteGen()
