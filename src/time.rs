//! Calendar arithmetic for the three timestamp formats the service writes:
//! the HTTP `Date` header (IMF-fixdate), log timestamps and API timestamps
//! (RFC 3339 in UTC). Kept here so that no layer needs a date crate for what
//! is forty lines of integer arithmetic.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC instant broken into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

impl Civil {
    /// Splits microseconds since the Unix epoch (negative before it) into fields.
    pub fn from_unix_micros(micros: i64) -> Civil {
        let secs = micros.div_euclid(1_000_000);
        let sub = micros.rem_euclid(1_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            micros: sub,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    pub fn now() -> Civil {
        Civil::from_unix_micros(unix_micros_now())
    }
}

/// Microseconds since the Unix epoch, by the system clock.
pub fn unix_micros_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const HTTP_DATE_LEN: usize = 29;

/// Writes `t` as an IMF-fixdate (RFC 9110 §5.6.7) into `out`.
pub fn write_http_date(t: &Civil, out: &mut [u8; HTTP_DATE_LEN]) {
    let wd = WEEKDAYS[(t.weekday % 7) as usize].as_bytes();
    let mo = MONTHS[((t.month.clamp(1, 12)) - 1) as usize].as_bytes();
    let year = t.year.clamp(0, 9999) as u32;
    out[0..3].copy_from_slice(wd);
    out[3] = b',';
    out[4] = b' ';
    two(&mut out[5..7], t.day);
    out[7] = b' ';
    out[8..11].copy_from_slice(mo);
    out[11] = b' ';
    two(&mut out[12..14], year / 100);
    two(&mut out[14..16], year % 100);
    out[16] = b' ';
    two(&mut out[17..19], t.hour);
    out[19] = b':';
    two(&mut out[20..22], t.minute);
    out[22] = b':';
    two(&mut out[23..25], t.second);
    out[25..29].copy_from_slice(b" GMT");
}

/// Length of `2026-12-04T13:22:50.123456Z`.
pub const RFC3339_MICROS_LEN: usize = 27;

/// Writes `t` as RFC 3339 UTC with microseconds and `Z`.
pub fn write_rfc3339_micros(t: &Civil, out: &mut [u8; RFC3339_MICROS_LEN]) {
    let year = t.year.clamp(0, 9999) as u32;
    two(&mut out[0..2], year / 100);
    two(&mut out[2..4], year % 100);
    out[4] = b'-';
    two(&mut out[5..7], t.month);
    out[7] = b'-';
    two(&mut out[8..10], t.day);
    out[10] = b'T';
    two(&mut out[11..13], t.hour);
    out[13] = b':';
    two(&mut out[14..16], t.minute);
    out[16] = b':';
    two(&mut out[17..19], t.second);
    out[19] = b'.';
    let mut m = t.micros.min(999_999);
    for i in (20..26).rev() {
        out[i] = b'0' + (m % 10) as u8;
        m /= 10;
    }
    out[26] = b'Z';
}

fn two(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(micros: i64) -> String {
        let mut b = [0u8; HTTP_DATE_LEN];
        write_http_date(&Civil::from_unix_micros(micros), &mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    fn rfc(micros: i64) -> String {
        let mut b = [0u8; RFC3339_MICROS_LEN];
        write_rfc3339_micros(&Civil::from_unix_micros(micros), &mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn http_date_matches_rfc_example() {
        assert_eq!(http(784_111_777_000_000), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc(1_796_390_570_123_456), "2026-12-04T13:22:50.123456Z");
        // Leap day, and before the epoch.
        assert_eq!(rfc(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(rfc(-1), "1969-12-31T23:59:59.999999Z");
    }
}
