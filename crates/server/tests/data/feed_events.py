"""Reads an iCalendar feed as a calendar app would, for the test sns::calendar_feed.

    python feed_events.py FROM TO < feed.ics

FROM and TO are days (YYYY-MM-DD), both included, as Musubi's calendar takes them. The feed is
parsed with the `icalendar` library and its events expanded with `recurring-ical-events`
(RRULE, EXDATE, time zones), both third-party: the point is to read the feed with someone
else's understanding of RFC 5545, not Musubi's.

Prints one JSON object per line for each occurrence overlapping those days, sorted by start
and UID:
uid, summary, start and end (ISO 8601: a date for an all-day event, with DTEND exclusive as in
the feed; a date-time with its UTC offset for a timed one), tzid (DTSTART's TZID parameter, or
null) and categories. Exits non-zero, saying why, on anything the parser or the expander
objects to, or on an event without UID, DTSTART or DTSTAMP.
"""

import datetime
import json
import sys

import icalendar
import recurring_ical_events


def fail(message):
    print(f"feed_events.py: {message}", file=sys.stderr)
    sys.exit(1)


def categories(component):
    out = []
    values = component.get("CATEGORIES")
    if values is None:
        return out
    if not isinstance(values, list):
        values = [values]
    for value in values:
        out.extend(str(c) for c in value.cats)
    return out


def iso(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            fail(f"a floating time without a time zone: {value.isoformat()}")
        return value.isoformat()
    return value.isoformat()


def main():
    if len(sys.argv) != 3:
        fail("usage: feed_events.py FROM TO < feed.ics")
    try:
        first = datetime.date.fromisoformat(sys.argv[1])
        last = datetime.date.fromisoformat(sys.argv[2])
    except ValueError as e:
        fail(f"the days: {e}")
    text = sys.stdin.buffer.read()
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except Exception as e:  # the library's own word on a malformed feed
        fail(f"icalendar cannot parse the feed: {e!r}")
    if calendar.name != "VCALENDAR":
        fail(f"not a VCALENDAR but {calendar.name}")
    # icalendar parses leniently and keeps what it could not read in `errors`.
    for component in calendar.walk():
        if component.errors:
            fail(f"icalendar found errors in a {component.name}: {component.errors}")
    timezones = {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")}
    for event in calendar.walk("VEVENT"):
        for prop in ("UID", "DTSTART", "DTSTAMP"):
            if prop not in event:
                fail(f"an event without {prop}: {event.to_ical()!r}")
        for prop in ("DTSTART", "DTEND", "EXDATE"):
            values = event.get(prop)
            if values is None:
                continue
            for value in values if isinstance(values, list) else [values]:
                tzid = value.params.get("TZID")
                if tzid is not None and tzid not in timezones:
                    fail(f"{prop} names TZID {tzid}, which has no VTIMEZONE")
    try:
        occurrences = recurring_ical_events.of(calendar).between(
            first, last + datetime.timedelta(days=1)
        )
    except Exception as e:
        fail(f"recurring-ical-events cannot expand the feed: {e!r}")
    rows = []
    for occurrence in occurrences:
        start = occurrence["DTSTART"]
        end = occurrence.get("DTEND")
        rows.append(
            {
                "uid": str(occurrence["UID"]),
                "summary": str(occurrence.get("SUMMARY", "")),
                "start": iso(start.dt),
                "end": iso(end.dt) if end is not None else None,
                "tzid": start.params.get("TZID"),
                "categories": categories(occurrence),
            }
        )
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in rows]
    # By start, then UID: the order a reader expects, and the same on every run.
    for _, _, line in sorted(zip([r["start"] for r in rows], [r["uid"] for r in rows], lines)):
        print(line)


if __name__ == "__main__":
    main()
