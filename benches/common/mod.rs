//! Shared by the benchmarks.
#![allow(dead_code)]

/// Peak resident set size of this process, in MB.
pub fn peak_rss_mb() -> f64 {
    rusage(libc::RUSAGE_SELF).ru_maxrss as f64 / 1024.0
}

/// (CPU seconds user + system, peak RSS in MB) of the waited-for children.
pub fn children_usage() -> (f64, f64) {
    let u = rusage(libc::RUSAGE_CHILDREN);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        secs(u.ru_utime) + secs(u.ru_stime),
        u.ru_maxrss as f64 / 1024.0,
    )
}

/// CPU seconds (user + system) this process used so far, all threads.
pub fn self_cpu_seconds() -> f64 {
    let u = rusage(libc::RUSAGE_SELF);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: getrusage writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    u
}

/// The tests' typed config builder (`tests/common/config.rs`).
#[path = "../../tests/common/config.rs"]
pub mod config;
#[allow(unused_imports)]
pub use config::{Platform, Source, TestConfig};
