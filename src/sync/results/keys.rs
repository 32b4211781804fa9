//! Idempotency keys and the sourcedIds derived from them: the same result
//! always gets the same key, so a repeated push overwrites, never adds.

use crate::model::ExamResult;
use crate::store::audit::sha256_hex;

/// Idempotency key of a result.
pub fn result_key(r: &ExamResult) -> String {
    let mut h = String::new();
    match &r.session_id {
        Some(s) => {
            h.push_str("session\0");
            h.push_str(s);
        }
        None => {
            h.push_str("result\0");
            h.push_str(&r.candidate);
            h.push('\0');
            h.push_str(r.taken_at.as_deref().unwrap_or(""));
        }
    }
    h.push('\0');
    h.push_str(&r.exam);
    sha256_hex(h.as_bytes())[..32].to_string()
}

/// Hash of the values pushed for a result.
pub fn value_hash(r: &ExamResult) -> String {
    let f = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let s = format!(
        "{}\0{}\0{}\0{}\0{}",
        f(r.score),
        f(r.max_score),
        r.passed.map(|p| p.to_string()).unwrap_or_default(),
        r.grade.as_deref().unwrap_or(""),
        r.taken_at.as_deref().unwrap_or("")
    );
    sha256_hex(s.as_bytes())[..32].to_string()
}

/// sourcedId of the line item for an exam in a class.
pub fn line_item_id(exam: &str, class: &str) -> String {
    format!(
        "sisync-li-{}",
        &sha256_hex(format!("{exam}\0{class}").as_bytes())[..24]
    )
}

/// sourcedId of the SIS result for an outbox key.
pub fn result_sourced_id(key: &str) -> String {
    format!("sisync-r-{key}")
}
