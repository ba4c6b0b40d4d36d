"""`python -m duckpond.cli`: the same as the `pond` console script."""

from .main import main

if __name__ == "__main__":
    main()
