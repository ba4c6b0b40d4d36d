"""Remotes: copies of a pond on object storage (push, pull, restore, verify).

Above storage, below the steward and the CLI. The operations are `push`, `pull`, `restore`
and `verify` (one module each, on `transfers`: the file-moving pool, and `logs`: where each
side stands); `layout` is the remote layout, `reports` their typed results, `ops` what the
`Pond` methods do with them.
"""
