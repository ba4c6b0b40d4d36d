"""The steward: write transactions, the control table, post-commit tasks and recovery."""
