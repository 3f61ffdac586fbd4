//! Sizes and instants as people read them, formatted the same way on every
//! screen and in every command.

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
        "B" => bytes(value.max(0.0) as u64),
        "B/s" => format!("{}/s", bytes(value.max(0.0) as u64)),
        "/s" => format!("{value:.1}/s"),
        "%" => format!("{value:.1}%"),
        _ if value.fract() == 0.0 => format!("{value:.0}"),
        unit => format!("{value:.1}{unit}"),
    }
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM` in UTC.
pub fn utc_minute(ms: i64) -> String {
    Civil::from_ms(ms).to_minute()
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_second(ms: i64) -> String {
    let civil = Civil::from_ms(ms);
    format!("{}:{:02} UTC", civil.to_minute(), civil.second)
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS.mmm` in UTC.
pub fn utc_millisecond(ms: i64) -> String {
    let civil = Civil::from_ms(ms);
    format!(
        "{}:{:02}.{:03}",
        civil.to_minute(),
        civil.second,
        civil.millisecond
    )
}

/// An instant split into its UTC calendar date and time of day, so that
/// every format above is a few fields of one split.
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    millisecond: i64,
}

impl Civil {
    fn from_ms(ms: i64) -> Civil {
        let secs = ms.div_euclid(1000);
        let of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        Civil {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
            millisecond: ms.rem_euclid(1000),
        }
    }

    fn to_minute(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute
        )
    }
}

/// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of a
/// day count since 1970-01-01, to spare a date crate.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
