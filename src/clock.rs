//! Today's date, overridable for tests and drills (`SISYNC_TODAY`); a leaf.

/// Today's local date; `SISYNC_TODAY` (YYYY-MM-DD) sets it for a test
/// of a freeze window config.
pub fn today() -> chrono::NaiveDate {
    std::env::var("SISYNC_TODAY")
        .ok()
        .and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
        .unwrap_or_else(|| chrono::Local::now().date_naive())
}
