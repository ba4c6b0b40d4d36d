"""The `pond` command line: a thin layer over `duckpond.Pond`."""
