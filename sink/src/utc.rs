//! Milliseconds since the Unix epoch as a UTC calendar time, without a date-time crate: the
//! sink needs only to print one (a `DATETIME(3)` literal, a letter's time in `likes-dlq`).

/// A UTC time split into calendar fields (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: u64,
    pub month: u64,
    pub day: u64,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
    pub milli: u64,
}

impl Civil {
    /// Howard Hinnant's `civil_from_days`, for times at or after the epoch.
    pub fn from_unix_ms(ms: u64) -> Civil {
        let secs = ms / 1000;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Civil {
            year: yoe + era * 400 + u64::from(month <= 2),
            month,
            day: doy - (153 * mp + 2) / 5 + 1,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            milli: ms % 1000,
        }
    }

    /// `YYYY-MM-DD`, the separator, `HH:MM:SS.mmm`.
    pub fn write(&self, f: &mut impl std::fmt::Write, separator: char) -> std::fmt::Result {
        let Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
            milli,
        } = *self;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}.{milli:03}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(ms: u64) -> String {
        let mut out = String::new();
        Civil::from_unix_ms(ms).write(&mut out, ' ').expect("write");
        out
    }

    #[test]
    fn epoch_leap_days_and_the_last_millisecond_of_9999() {
        assert_eq!(shown(0), "1970-01-01 00:00:00.000");
        assert_eq!(shown(1_795_581_680_123), "2026-11-25 04:41:20.123");
        assert_eq!(shown(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(shown(253_402_300_799_999), "9999-12-31 23:59:59.999");
        assert_eq!(shown(253_402_300_800_000), "10000-01-01 00:00:00.000");
    }
}
