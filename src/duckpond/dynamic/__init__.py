"""The read path for dynamic nodes: turns stored factory nodes into live nodes.

Storage keeps only a node's factory name and config bytes; the Resolver here (above storage,
beside query) builds the live node each read path uses: list, cat, describe, copy out, SQL and
every factory's own input patterns. Derived results are cached by their inputs' versions.
"""

from .cache import DerivedCache
from .resolver import Resolver, check_node

__all__ = ["DerivedCache", "Resolver", "check_node"]
