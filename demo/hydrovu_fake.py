"""A stand-in for HydroVu's API in `make demo` (the vendor's needs an account): the fake
server the tests use (tests/hydrovu_server.py) with two wells' readings, on 127.0.0.1.

Prints its URL, client id and client secret, one a line, then serves until its stdin closes.
Each `more` line read on stdin adds the next six hours of readings (a device keeps
measuring between two collector runs)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hydrovu_server import CLIENT_ID, CLIENT_SECRET, FakeHydroVu  # noqa: E402

START = 1_793_491_200  # 2026-11-01T00:00:00Z
STEP = 900  # a reading every 15 minutes
BATCH = 24  # six hours


def main() -> None:
    fake = FakeHydroVu(page_size=100)
    added = 0

    def more() -> None:
        nonlocal added
        times = [START + STEP * (added + i) for i in range(BATCH)]
        fake.add(1001, times, ("1", "2", "5"))  # WellA: temperature, pressure, pH
        fake.add(1002, times, ("1", "4"))  # WellB: temperature, conductivity
        added += BATCH

    more()
    with fake.serve():
        print(fake.url, CLIENT_ID, CLIENT_SECRET, sep="\n", flush=True)
        for line in sys.stdin:
            if line.strip() == "more":
                more()
                print("ok", flush=True)


if __name__ == "__main__":
    main()
