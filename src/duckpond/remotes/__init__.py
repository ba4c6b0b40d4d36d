"""Remotes: copies of a pond on object storage (push, pull, restore, verify).

Above storage, below the steward and the CLI. `sync` holds the operations, `layout` the
remote layout, `reports` their typed results.
"""
