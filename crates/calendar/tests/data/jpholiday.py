#!/usr/bin/env python3
"""Writes every Japanese public holiday of 1990-01-01..=2050-12-31 as `date,name` lines,
as computed by PyPI's `jpholiday`, an implementation independent of Musubi's. The CSV it
prints is committed beside this script and read by `crates/calendar/tests/holidays.rs`, so
the test needs no network or Python.

Regenerate (from the repository root):

    python3 -m venv /tmp/jp && /tmp/jp/bin/pip install jpholiday==1.0.3 \
        && /tmp/jp/bin/python crates/calendar/tests/data/jpholiday.py \
        > crates/calendar/tests/data/jpholiday-1990-2050.csv

The committed CSV was made with jpholiday 1.0.3 (the first line of the CSV, a comment,
records the version that made it). Names are written exactly as jpholiday gives them; the
Rust test maps jpholiday's naming conventions to the official ones.
"""

import datetime
import importlib.metadata
import os
import sys

# This file is itself named jpholiday.py: keep `import jpholiday` from importing it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import jpholiday  # noqa: E402

FIRST = datetime.date(1990, 1, 1)
LAST = datetime.date(2050, 12, 31)


def main() -> None:
    out = sys.stdout
    version = importlib.metadata.version("jpholiday")
    out.write(f"# jpholiday {version}, {FIRST.isoformat()}..={LAST.isoformat()}\n")
    out.write("date,name\n")
    day = FIRST
    while day <= LAST:
        # Ask both questions for every day, so the CSV also catches a disagreement between
        # jpholiday's own two answers.
        name = jpholiday.is_holiday_name(day)
        if jpholiday.is_holiday(day) != (name is not None):
            raise SystemExit(f"jpholiday contradicts itself on {day}")
        if name is not None:
            if "," in name or "\n" in name:
                raise SystemExit(f"unexpected character in the name of {day}: {name!r}")
            out.write(f"{day.isoformat()},{name}\n")
        day += datetime.timedelta(days=1)


if __name__ == "__main__":
    main()
