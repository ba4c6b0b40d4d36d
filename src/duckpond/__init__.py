"""pond: a local-first, versioned, SQL-queryable data store on Delta Lake."""

from .errors import PondError
from .pond import EntryInfo, Pond

__version__ = "0.1.0"
__all__ = ["EntryInfo", "Pond", "PondError", "__version__"]
