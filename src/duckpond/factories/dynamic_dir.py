"""`dynamic-dir`: a directory whose children are factory nodes with inline configs."""

from __future__ import annotations

from typing import Any

from .. import paths
from ..errors import FactoryError
from .base import DATA, Factory, Fields
from .live import BuildContext, LiveDir, LiveNode, digest
from .registry import get


class DynamicDir(Factory):
    name = "dynamic-dir"
    kind = DATA
    file_type = "dir:dynamic"
    description = (
        "A directory of derived nodes: `entries: [{name, factory, config}]`, each child a "
        "data factory node with its config inline; children may refer to each other by path."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        entries = f.get("entries", list, required=True)
        f.done()
        out = []
        seen: set[str] = set()
        for e in entries:
            if not isinstance(e, dict):
                raise FactoryError(f"{self.name}: an entry is {{name, factory, config}}")
            ef = Fields(f"{self.name} entry", e)
            item = {
                "name": ef.get("name", str, required=True),
                "factory": ef.get("factory", str, required=True),
                "config": ef.get("config", dict, {}),
            }
            ef.done()
            name = item["name"]
            if not name or "/" in name or name in (".", ".."):
                raise FactoryError(f"{self.name}: entry name {name!r} must be one path part")
            if name in seen:
                raise FactoryError(f"{self.name}: entry '{name}' is listed twice")
            seen.add(name)
            fac = get(item["factory"])
            if fac.kind != DATA:
                raise FactoryError(
                    f"{self.name}: entry '{name}': {fac.name} runs jobs, it makes no node"
                )
            try:
                fac.validate(item["config"])
            except FactoryError as err:
                raise FactoryError(f"{self.name}: entry '{name}': {err}") from None
            out.append(item)
        return {"entries": out}

    def build(self, config: dict[str, Any], ctx: BuildContext) -> EntriesDir:
        return EntriesDir(ctx, config)


class EntriesDir(LiveDir):
    def __init__(self, ctx: BuildContext, config: dict[str, Any]) -> None:
        self.ctx = ctx
        self.path = ctx.path
        self.config = config
        self.entries = {e["name"]: e for e in config["entries"]}

    def key(self) -> str:
        return digest(self.config)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def child(self, name: str) -> LiveNode | None:
        e = self.entries.get(name)
        if e is None:
            return None
        node = self.ctx.build(paths.join(self.path, name), e["factory"], e["config"])
        node.version = getattr(self, "version", 0)  # type: ignore[attr-defined]
        node.size = 0  # type: ignore[attr-defined]
        return node


FACTORY = DynamicDir()
