"""The read-only import of another pond under a path of this one.

`pond remote add NAME URL PATH` stores the factory node PATH (factory `remote-import`, config
`remote: NAME`, a dynamic directory); `pond pull NAME` keeps a complete copy of the imported
pond at `$POND/imports/NAME/`. Reading PATH shows that copy's tree: its files read as stored
files of this pond. Nothing of the imported pond runs here: its factory nodes show as their
stored configs, and writing under PATH is refused (the steward says so via
`config.explain_write_error`). The factory is the `remote-import` entry point of the
`duckpond.factories` group (pyproject.toml): `FACTORY` below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import nodes, paths
from ..errors import FactoryError, PondError
from ..factories.base import DATA, Factory, Fields
from ..factories.live import BuildContext, LiveDir, LiveNode
from ..storage.fs import Located, PondFS
from .config import IMPORT_FACTORY, check_name, import_root


class ImportFactory(Factory):
    name = IMPORT_FACTORY
    kind = DATA
    file_type = nodes.DIR_DYNAMIC
    description = (
        "The read-only mount of an imported pond (`pond remote add NAME URL PATH`): "
        "`remote: NAME`; shows the copy `pond pull NAME` keeps in $POND/imports/NAME."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {"remote": f.get("remote", str, required=True)}
        f.done()
        try:
            check_name(out["remote"])
        except PondError as e:
            raise FactoryError(f"{self.name}: {e}") from None
        return out

    def build(self, config: dict[str, Any], ctx: BuildContext) -> LiveNode:
        return ImportRoot(ctx.path, config["remote"], import_root(ctx.pond_root, config["remote"]))


class _Tree:
    """The imported copy, opened once per read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._fs: PondFS | None = None

    @property
    def present(self) -> bool:
        return (self.root / "data" / "_delta_log").is_dir()

    @property
    def fs(self) -> PondFS:
        if self._fs is None:
            from ..storage.blobs import BlobStore
            from ..storage.datatable import DataTable

            self._fs = PondFS(DataTable.open(self.root / "data"), BlobStore(self.root / "blobs"))
        return self._fs


def _mounted(tree: _Tree, mount: str, loc: Located) -> LiveNode:
    """An imported node seen at mount + its own path."""
    from ..dynamic.physical import StoredData, StoredFile

    node: LiveNode
    if nodes.is_dir(loc.file_type):
        node = ImportDir(tree, mount, loc)
    elif nodes.is_table(loc.file_type) or nodes.is_series(loc.file_type):
        if nodes.is_dynamic(loc.file_type):
            node = StoredData(tree.fs, loc)  # a factory of the imported pond: never built here
        else:
            node = StoredFile(tree.fs, loc)
    else:
        node = StoredData(tree.fs, loc)
    node.path = _join(mount, loc.path)
    return node


def _join(mount: str, inner: str) -> str:
    return mount if inner == "/" else paths.join(mount, inner.lstrip("/"))


class ImportDir(LiveDir):
    def __init__(self, tree: _Tree, mount: str, loc: Located) -> None:
        self.tree = tree
        self.mount = mount
        self.loc = loc
        self.path = _join(mount, loc.path)
        self.file_type = loc.file_type
        self.version = loc.row.version
        self.size = loc.row.size

    def key(self) -> str:
        return f"import:{self.loc.node_id}@{self.loc.row.version}"

    def names(self) -> list[str]:
        if self.loc.file_type == nodes.DIR_DYNAMIC:
            return []
        return [e.name for e in self.tree.fs.entries_of(self.loc).entries()]

    def child(self, name: str) -> LiveNode | None:
        loc = self.tree.fs.lookup(paths.join(self.loc.path, name), follow=False)
        return None if loc is None else _mounted(self.tree, self.mount, loc)

    def children(self) -> list[LiveNode]:
        if self.loc.file_type == nodes.DIR_DYNAMIC:
            return []
        return [_mounted(self.tree, self.mount, c) for c in self.tree.fs.children(self.loc)]


class ImportRoot(LiveDir):
    """The mount point: the imported pond's root, empty until the first `pond pull`."""

    def __init__(self, path: str, remote: str, root: Path) -> None:
        self.path = path
        self.remote = remote
        self.tree = _Tree(root)

    def key(self) -> str:
        return f"import:{self.remote}"

    def _root(self) -> ImportDir | None:
        if not self.tree.present:
            return None
        return ImportDir(self.tree, self.path, self.tree.fs.root())

    def names(self) -> list[str]:
        root = self._root()
        return [] if root is None else root.names()

    def child(self, name: str) -> LiveNode | None:
        root = self._root()
        return None if root is None else root.child(name)

    def children(self) -> list[LiveNode]:
        root = self._root()
        return [] if root is None else root.children()


FACTORY = ImportFactory()
