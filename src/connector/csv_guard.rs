//! Spreadsheet formula guard for the CSV files sisync writes. A cell that
//! starts with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a
//! formula when the file is opened in Excel or LibreOffice
//! (`=cmd|' /C calc'!A0`); a leading `'` makes it text. Numbers (`-3`,
//! `+1.5`) are left as they are.
//!
//! Human-facing CSV (`privacy export --format csv`, `audit list --csv`) is
//! always guarded; machine-facing drops (csv-drop platform, gradebook CSV)
//! by default, switched off with `platform.formula_guard` /
//! `results.sink.formula_guard` when an importer needs the bytes as given.

use std::borrow::Cow;
use std::io::Write;

use serde::Serialize;

/// The cell, made inert when a spreadsheet would take it for a formula.
pub fn guard(cell: &str) -> Cow<'_, str> {
    let risky = cell
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    if risky && cell.parse::<f64>().is_err() {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Write `rows` (serde records, a header first) as CSV with every cell
/// guarded, one row at a time.
pub fn write_serialized<W: Write, T: Serialize>(out: W, rows: &[T]) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    for (i, r) in rows.iter().enumerate() {
        let mut one = csv::WriterBuilder::new()
            .has_headers(i == 0)
            .from_writer(Vec::new());
        one.serialize(r)?;
        let bytes = one.into_inner().map_err(|e| e.into_error())?;
        let mut back = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(&bytes[..]);
        for rec in back.records() {
            let rec = rec?;
            w.write_record(rec.iter().map(|c| guard(c).into_owned()))?;
        }
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_become_text_and_numbers_stay() {
        for (cell, want) in [
            ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
            ("+SUM(A1)", "'+SUM(A1)"),
            ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("-3", "-3"),
            ("+1.5", "+1.5"),
            ("7.5", "7.5"),
            ("Jan de Vries", "Jan de Vries"),
            ("", ""),
            ("a=b", "a=b"),
        ] {
            assert_eq!(guard(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn serialized_rows_are_guarded() {
        #[derive(Serialize)]
        struct R {
            a: String,
            n: Option<i64>,
        }
        let mut out = Vec::new();
        write_serialized(
            &mut out,
            &[
                R {
                    a: "=1+1".into(),
                    n: Some(-1),
                },
                R {
                    a: "ok".into(),
                    n: None,
                },
            ],
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a,n\n'=1+1,-1\nok,\n");
    }
}
