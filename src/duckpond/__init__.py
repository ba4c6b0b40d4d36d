"""pond: a local-first, versioned, SQL-queryable data store on Delta Lake."""

__version__ = "0.1.0"
