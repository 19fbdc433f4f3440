//! The calendar's pure parts, without I/O: Japanese public holidays, recurrence rules,
//! iCalendar output and the on-call duty drafter. Times are in Asia/Tokyo, which has had no
//! daylight saving since 1951, so a fixed +09:00 offset is exact for every date Musubi stores.

pub mod holidays;
pub mod ical;
pub mod recurrence;
pub mod rotation;
