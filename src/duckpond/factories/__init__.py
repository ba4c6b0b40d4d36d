"""Factories: named recipes turning a stored config into a live node or a runnable job.

Storage keeps only a node's factory name and config bytes; the registry (registry.py, a leaf
that imports no factory) turns the name into a factory, loaded from the `duckpond.factories`
entry points: the built-in ones and any installed plugin's alike (docs/factories/writing.md).
base.py is what a factory is and what a job gets (RunContext); live.py what a data factory
builds. The registry loads on first use: reading a pond without factory nodes never needs it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import all_factories, get, listing, register

__all__ = ["all_factories", "get", "listing", "register"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
