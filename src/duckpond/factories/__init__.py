"""Factories: named recipes turning a stored config into a live node or a runnable job.

Storage keeps only a node's factory name and config bytes; this registry (above storage)
turns them into behaviour, so storage never imports a factory. The registry (and yaml with
it) loads on first use: reading a pond without factory nodes never needs it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import all_factories, get, register

__all__ = ["all_factories", "get", "register"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
