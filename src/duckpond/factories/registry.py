"""The factory registry: name -> factory. Data factories register here too."""

from __future__ import annotations

from ..errors import FactoryError
from .base import Factory

_REGISTRY: dict[str, Factory] = {}


def register(factory: Factory) -> Factory:
    _REGISTRY[factory.name] = factory
    return factory


def get(name: str) -> Factory:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise FactoryError(f"unknown factory '{name}' (known: {known})") from None


def all_factories() -> list[Factory]:
    _load_builtins()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _load_builtins() -> None:
    # Imported lazily so the registry module has no import-time cycle with its factories.
    from ..remotes import mount  # noqa: F401 - the import mount is a data factory too
    from . import (  # noqa: F401
        command,
        dynamic_dir,
        hydrovu,
        join,
        reduce,
        remote,
        sitegen,
        sql_derived,
        synthetic,
        template,
        test_executor,
    )
