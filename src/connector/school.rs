//! The Dutch school as UWLR and EDEXML name it: a BRIN code, a dependance
//! (location) code and a school year (`2025-2026`, turning over on a
//! configurable day, 1 August by default). Shared by the `uwlr` source,
//! the `edexml-drop` platform and the `uwlr` result sink.

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

/// Two digits and two capitals, e.g. `99AA`.
pub fn is_brin(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 4
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2..].iter().all(u8::is_ascii_uppercase)
}

/// Two digits, e.g. `00` for the main location.
pub fn is_dependance(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The school block of a connector: its own `brincode` and
/// `dependancecode` when set, else the first four characters of
/// `institution.brin` and the two digits after them, when there are any.
pub fn school_block(
    brincode: Option<&str>,
    dependancecode: Option<&str>,
    institution_brin: &str,
) -> (String, Option<String>) {
    let brin = institution_brin.trim();
    let code = brincode.map_or_else(|| brin.chars().take(4).collect(), str::to_string);
    let dep = dependancecode.map(str::to_string).or_else(|| {
        let rest: String = brin.chars().skip(4).collect();
        is_dependance(&rest).then_some(rest)
    });
    (code, dep)
}

/// The keys of a connector that writes a school block (`edexml-drop`, the
/// `uwlr` result sink), flattened into its section.
#[derive(Debug, Clone, Deserialize)]
pub struct SchoolKeys {
    /// The school block's `brincode` (`99XX`); default: the first four
    /// characters of `institution.brin`.
    pub brincode: Option<String>,
    /// The school block's `dependancecode` (two digits); default: the two
    /// digits after the BRIN in `institution.brin`, when there are any.
    pub dependancecode: Option<String>,
    /// `MM-DD` on which a school year starts (default `08-01`).
    #[serde(default = "default_year_start")]
    pub school_year_starts: String,
}

/// 1 August: `MM-DD` of the day a school year starts, unless set.
pub fn default_year_start() -> String {
    "08-01".into()
}

impl SchoolKeys {
    /// `(brincode, dependancecode)` of the school block.
    pub fn block(&self, institution_brin: &str) -> (String, Option<String>) {
        let (code, dep) = (self.brincode.as_deref(), self.dependancecode.as_deref());
        school_block(code, dep, institution_brin)
    }

    /// The school year `day` falls in (an unreadable start day, which
    /// validation refuses, counts as 1 August).
    pub fn year_of(&self, day: NaiveDate) -> String {
        school_year(
            day,
            parse_month_day(&self.school_year_starts).unwrap_or((8, 1)),
        )
    }
}

/// "MM-DD" as (month, day); 02-29 is accepted.
pub fn parse_month_day(s: &str) -> Option<(u32, u32)> {
    let (m, d) = s.trim().split_once('-')?;
    let (m, d) = (m.parse().ok()?, d.parse().ok()?);
    // 2024 is a leap year
    NaiveDate::from_ymd_opt(2024, m, d).map(|_| (m, d))
}

/// The school year `day` falls in: "2025-2026" from `start` (month, day)
/// of 2025 up to the day before it in 2026.
pub fn school_year(day: NaiveDate, start: (u32, u32)) -> String {
    let y = day.year();
    let first = if (day.month(), day.day()) >= start {
        y
    } else {
        y - 1
    };
    format!("{first}-{}", first + 1)
}

/// `2025-2026`: two consecutive four-digit years.
pub fn valid_school_year(s: &str) -> bool {
    let Some((a, b)) = s.split_once('-') else {
        return false;
    };
    match (a.parse::<i32>(), b.parse::<i32>()) {
        (Ok(a), Ok(b)) => a.to_string().len() == 4 && b == a + 1,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn school_year_turns_over_on_the_start_day() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(school_year(d(2026, 7, 31), (8, 1)), "2025-2026");
        assert_eq!(school_year(d(2026, 8, 1), (8, 1)), "2026-2027");
        assert_eq!(school_year(d(2027, 1, 15), (8, 1)), "2026-2027");
        assert_eq!(school_year(d(2026, 8, 14), (8, 15)), "2025-2026");
        assert_eq!(parse_month_day("08-01"), Some((8, 1)));
        assert_eq!(parse_month_day("02-29"), Some((2, 29)));
        assert_eq!(parse_month_day("02-30"), None);
        assert_eq!(parse_month_day("aug"), None);
        assert!(valid_school_year("2025-2026"));
        assert!(!valid_school_year("2025-2027"));
        assert!(!valid_school_year("25-26"));
    }

    #[test]
    fn codes_and_an_own_brincode() {
        let own = school_block(Some("12BC"), None, "99AA01");
        assert_eq!(own, ("12BC".into(), Some("01".into())));
        assert!(is_brin("99AA") && !is_brin("99aa") && !is_brin("9AAA"));
        assert!(is_dependance("00") && !is_dependance("0") && !is_dependance("0a"));
    }
}
