"""A static, offline web site of a pond: charts of its series and the steward's status page.

`build(pond, out_dir, config)` is what `pond site build` and the `sitegen` post-commit
factory run (see builder.py). Loaded only when a site is built: it pulls in pyarrow,
DataFusion and jinja2.
"""

from __future__ import annotations

from .builder import SiteReport, build
from .config import SiteConfig, load, parse

__all__ = ["SiteConfig", "SiteReport", "build", "load", "parse"]
