"""`python -m duckpond.cli`: the same as the `pond` console script."""

from .launch import main

if __name__ == "__main__":
    main()
