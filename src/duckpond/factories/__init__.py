"""Factories: named recipes turning a stored config into a live node or a runnable job.

Storage keeps only a node's factory name and config bytes; this registry (above storage)
turns them into behaviour, so storage never imports a factory."""

from .registry import all_factories, get, register

__all__ = ["all_factories", "get", "register"]
