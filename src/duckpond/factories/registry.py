"""The factory registry: name -> factory, fed by the `duckpond.factories` entry points.

A leaf: it imports no factory. Every factory, built-in or a third-party package's, is a
module-level `Factory` instance named by an entry point (pyproject.toml):

    [project.entry-points."duckpond.factories"]
    my-factory = "my_package.module:FACTORY"

Entry points are loaded lazily, one name at a time, and cached: reading a node of one factory
imports that factory's module only. A plugin that fails to load is one line naming its entry
point (`PluginLoadError`); the other factories are unaffected. `register()` adds a factory
directly (tests, programs embedding pond); a factory module may also call it on itself.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple

from ..errors import FactoryError, clip
from .base import Factory

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "duckpond.factories"

log = logging.getLogger("pond")


class PluginLoadError(FactoryError):
    """A factory plugin that could not be loaded: the entry point and the reason, one line."""


class Listed(NamedTuple):
    factory: Factory
    package: str  # the distribution that provides it ("duckpond" for the built-ins)


_REGISTRY: dict[str, Factory] = {}
_PACKAGE: dict[str, str] = {}  # factory name -> distribution name
_FAILED: dict[str, PluginLoadError] = {}
_POINTS: dict[str, list[EntryPoint]] | None = None


def register(factory: Factory, package: str | None = None) -> Factory:
    """Add `factory` under its name (a later registration of the name replaces it)."""
    if not isinstance(factory, Factory):
        raise TypeError(f"register() takes a Factory instance, not {type(factory).__name__}")
    _REGISTRY[factory.name] = factory
    _FAILED.pop(factory.name, None)
    if package is not None:
        _PACKAGE[factory.name] = package
    return factory


def get(name: str) -> Factory:
    """The factory called `name`, loading its entry point on first use."""
    found = _REGISTRY.get(name)
    if found is not None:
        return found
    points = _entry_points()
    if name not in points:
        known = ", ".join(sorted(set(_REGISTRY) | set(points)))
        if not known:
            raise FactoryError(
                f"unknown factory '{name}': no factories are installed (the "
                f"'{GROUP}' entry points are missing: reinstall duckpond)"
            )
        raise FactoryError(f"unknown factory '{name}' (known: {known})")
    return _load(name, points[name])


def all_factories() -> list[Factory]:
    """Every factory that loads, sorted by name (see `listing` for packages and failures)."""
    return [entry.factory for entry in listing()]


def listing() -> list[Listed]:
    """Every factory that loads, with its package, sorted by name; a plugin that fails to
    load is logged as a warning (one line) and left out."""
    points = _entry_points()
    for name in sorted(set(points) - set(_REGISTRY)):
        try:
            _load(name, points[name])
        except PluginLoadError as e:
            log.warning("%s", e)
    return [Listed(_REGISTRY[n], package_of(n)) for n in sorted(_REGISTRY)]


def load_errors() -> list[PluginLoadError]:
    """The plugins that failed to load so far, by name."""
    return [_FAILED[n] for n in sorted(_FAILED)]


def package_of(name: str) -> str:
    """The distribution that provides factory `name` (a registered factory: its module's)."""
    if name in _PACKAGE:
        return _PACKAGE[name]
    factory = _REGISTRY.get(name)
    if factory is None:
        return ""
    from importlib.metadata import packages_distributions

    top = type(factory).__module__.split(".")[0]
    dists = packages_distributions().get(top, [])
    _PACKAGE[name] = dists[0] if dists else top
    return _PACKAGE[name]


def _entry_points() -> dict[str, list[EntryPoint]]:
    """The group's entry points by name, read once per process."""
    global _POINTS
    if _POINTS is None:
        from importlib.metadata import entry_points

        points: dict[str, list[EntryPoint]] = {}
        for ep in entry_points(group=GROUP):
            same = points.setdefault(ep.name, [])
            if all(ep.value != other.value for other in same):
                same.append(ep)
        _POINTS = points
    return _POINTS


def _load(name: str, points: list[EntryPoint]) -> Factory:
    if name in _FAILED:
        raise _FAILED[name]
    try:
        factory = _load_one(name, points)
    except PluginLoadError as e:
        _FAILED[name] = e
        raise
    _REGISTRY[name] = factory
    _PACKAGE[name] = _dist_name(points[0])
    return factory


def _load_one(name: str, points: list[EntryPoint]) -> Factory:
    where = f"entry point '{name} = {points[0].value}' of package {_dist_name(points[0])}"
    if len(points) > 1:
        others = ", ".join(f"{p.value} ({_dist_name(p)})" for p in points)
        raise PluginLoadError(f"factory plugin '{name}' is provided twice: {others}")
    try:
        obj = points[0].load()
    except Exception as e:  # noqa: BLE001 - a broken plugin must not break the others
        reason = clip(" ".join(str(e).split()), 300)
        raise PluginLoadError(
            f"factory plugin '{name}' ({where}) failed to load: {type(e).__name__}: {reason}"
        ) from None
    if not isinstance(obj, Factory):
        raise PluginLoadError(
            f"factory plugin '{name}' ({where}) is a {type(obj).__name__}, "
            "not a duckpond Factory instance"
        )
    if obj.name != name:
        raise PluginLoadError(
            f"factory plugin '{name}' ({where}) is a factory named '{obj.name}': "
            "the entry point's name must be the factory's name"
        )
    return obj


def _dist_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"  # set on every discovered point
