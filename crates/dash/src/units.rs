//! Sizes and instants as people read them, formatted the same way on every
//! screen and in every command.

use backroom_frame::server::unit;

/// A size in binary units, one decimal: `1.5 GiB` (bytes stay whole: `512 B`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A server's vital sign as its unit says: sizes and byte rates in binary
/// units, rates and percentages with one decimal, counts whole.
pub fn vital(value: f64, unit: &str) -> String {
    match unit {
        unit::BYTES => bytes(value.max(0.0) as u64),
        unit::BYTES_PER_SEC => format!("{}/s", bytes(value.max(0.0) as u64)),
        unit::PER_SEC => format!("{value:.1}/s"),
        unit::PERCENT => format!("{value:.1}%"),
        _ if value.fract() == 0.0 => format!("{value:.0}"),
        unit => format!("{value:.1}{unit}"),
    }
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM` in UTC.
pub fn utc_minute(ms: i64) -> String {
    utc(ms, "%Y-%m-%d %H:%M")
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_second(ms: i64) -> String {
    utc(ms, "%Y-%m-%d %H:%M:%S UTC")
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS.mmm` in UTC.
pub fn utc_millisecond(ms: i64) -> String {
    utc(ms, "%Y-%m-%d %H:%M:%S%.3f")
}

/// An instant in UTC as `format` (strftime) says; one beyond the years
/// jiff knows is shown as the nearest it does.
fn utc(ms: i64, format: &str) -> String {
    let at = jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    at.strftime(format).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vitals_are_written_as_their_unit_says() {
        assert_eq!(vital(12.0, ""), "12");
        assert_eq!(vital(2.5, ""), "2.5");
        assert_eq!(vital(3_355_443.0, "B/s"), "3.2 MiB/s");
        assert_eq!(vital(512.0, "B"), "512 B");
        assert_eq!(vital(41.25, "/s"), "41.2/s");
        assert_eq!(vital(0.5, "%"), "0.5%");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(bytes(1 << 30), "1.0 GiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn minutes_are_utc_calendar_dates() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00");
        assert_eq!(utc_minute(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(utc_minute(1_795_000_000_000), "2026-11-18 11:06");
        // 2026-11-23 10:41:59 UTC.
        assert_eq!(utc_minute(1_795_430_519_000), "2026-11-23 10:41");
    }

    #[test]
    fn seconds_are_labelled_utc_and_drop_the_milliseconds() {
        assert_eq!(utc_second(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_second(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_second(1_795_000_000_123), "2026-11-18 11:06:40 UTC");
    }

    #[test]
    fn milliseconds_keep_three_digits() {
        assert_eq!(utc_millisecond(0), "1970-01-01 00:00:00.000");
        assert_eq!(utc_millisecond(951_782_400_123), "2000-02-29 00:00:00.123");
        assert_eq!(
            utc_millisecond(1_795_000_000_000),
            "2026-11-18 11:06:40.000"
        );
    }
}
