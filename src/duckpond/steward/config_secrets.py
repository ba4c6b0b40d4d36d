"""Every `${env:NAME}` the pond's configs refer to, so a job's output can be redacted of
all of them (SPEC §8), not only of its own config's.

A job could learn another node's secret (a remote's `secret_access_key`, a collector's
`client_secret`) without having it in its environment: from a file, from the pond
process (`/proc/PPID/environ`), from a shared credential. So whatever the pond stores or
prints of a job's output has the values of every reference in every config replaced:

- every factory node of the committed tree (job configs under /etc/system.d, remotes
  under /sys/remotes, data factories anywhere, nested configs of a dynamic directory),
  found by walking the physical directories (symlinks not followed) and reading only
  the configs of factory nodes;
- the remotes kept as local files ($POND/remotes/NAME.yaml, a mirror's attachment).

A reference whose variable is not set in the pond process resolves to nothing and has
nothing to redact. The names found are cached per data table version within a process:
several jobs after one write walk the tree once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .. import nodes, paths
from ..factories.base import Secrets
from ..remotes import state as remote_state
from ..storage.direntries import Entry
from ..storage.fs import PondFS, locate

_REF = re.compile(rb"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_cache: dict[str, tuple[int, frozenset[str]]] = {}


def referenced_names(fs: PondFS, root: Path) -> frozenset[str]:
    """The NAMEs of every `${env:NAME}` in the pond's configs."""
    found = set(_tree_names(fs, root))
    for name in remote_state.mirror_names(root):
        found.update(m.decode() for m in _REF.findall(remote_state.read_mirror(root, name)))
    return frozenset(found)


def _tree_names(fs: PondFS, root: Path) -> frozenset[str]:
    version = fs.table.version()
    key = str(root)
    hit = _cache.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    found: set[str] = set()
    stack = [fs.root()]
    while stack:
        parent = stack.pop()
        for name, node_id, file_type in fs.entries_of(parent).columns():
            if file_type == nodes.DIR_PHYSICAL or nodes.is_dynamic(file_type):
                path = paths.join(parent.path, name)
                loc = locate(fs, parent, Entry(name, node_id, file_type), path)
                if file_type == nodes.DIR_PHYSICAL:
                    stack.append(loc)
                elif loc.row.factory is not None:
                    found.update(m.decode() for m in _REF.findall(fs.content(loc.row)))
    names = frozenset(found)
    _cache[key] = (version, names)
    return names


def job_secrets(fs: PondFS, root: Path) -> Secrets:
    """A job run's Secrets: its own config's values (added as its config is expanded),
    and, when first needed, those of every reference in the pond's configs."""

    def more(secrets: Secrets) -> None:
        for name in sorted(referenced_names(fs, root)):
            value = os.environ.get(name)
            if value is not None:
                secrets.add(name, value)

    return Secrets(more)
