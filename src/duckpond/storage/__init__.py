"""Delta-backed storage: the data table, the blob store and the filesystem view over them."""
