//! The daemon at rest: `cargo bench --bench daemon_idle`.
//!
//! Builds a state database of about 100 MB (records and audit entries),
//! then starts the real `sisync run` binary with `NOTIFY_SOCKET` pointing
//! at a socket of its own and measures
//! - the time from spawn to READY=1 (5 starts; target < 200 ms),
//! - CPU time (user + system, from /proc) over 60 s idle (target < 0.1 s
//!   per minute) and resident memory (target < 30 MB).
//!
//! `SISYNC_BENCH_IDLE_SECS` shortens the idle window; `SISYNC_BENCH_DB_MB`
//! changes the database size.

mod common;
use common::{Source, TestConfig};

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn build_state(db: &Path, mb: u64) {
    drop(sisync::store::Store::open(db).unwrap());
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut rec = tx
            .prepare(
                "INSERT INTO records (kind, sourced_id, hash, field_hashes, platform_id, active, updated_at)
                 VALUES ('user', ?1, ?2, ?3, ?4, 1, '2026-11-01T00:00:00.000Z')",
            )
            .unwrap();
        let mut audit = tx
            .prepare(
                "INSERT INTO audit (at, actor, run_id, direction, endpoint, action, record_kind, record_id,
                                    record_id_hash, fields, payload_sha256, outcome, prev_hash, entry_hash)
                 VALUES (?1, 'daemon', 1, 'out', 'https://platform.example/scim/v2/Users', 'user.create', 'user',
                         ?2, ?3, 'name,role,org', ?3, 'ok', ?3, ?3)",
            )
            .unwrap();
        let hash = |i: u64, salt: &str| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(format!("{salt}{i}")))
        };
        let target = mb * 1024 * 1024;
        let mut i = 0u64;
        // about 1.5 KB per user: a record row and two audit entries
        while i * 1536 < target {
            let id = format!("stu-{i:08}");
            rec.execute(rusqlite::params![
                id,
                hash(i, "h"),
                format!(
                    "{{\"name\":\"{}\",\"role\":\"{}\",\"org\":\"{}\"}}",
                    hash(i, "n"),
                    hash(i, "r"),
                    hash(i, "o")
                ),
                format!("p-{i}")
            ])
            .unwrap();
            for k in 0..2 {
                let at = format!("2026-11-{:02}T{:02}:00:00.000Z", 1 + (i % 20), k * 5);
                audit
                    .execute(rusqlite::params![at, id, hash(i + k, "a")])
                    .unwrap();
            }
            i += 1;
        }
        tx.execute(
            "INSERT INTO runs (kind, actor, started_at, finished_at, outcome, full, summary)
             VALUES ('roster', 'daemon', ?1, ?1, 'ok', 1, '{}')",
            [sisync::store::now()],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
}

fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // fields after the command name in parentheses
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

fn proc_status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mb = env_u64("SISYNC_BENCH_DB_MB", 100);
    let t = Instant::now();
    build_state(&db, mb);
    let size = std::fs::metadata(&db).unwrap().len();
    println!(
        "state database: {:.0} MB, built in {:.1} s",
        size as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = TestConfig::new(dir.path())
        .institution("Bench", "99AA")
        .source(Source::OneRosterCsv(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/oneroster-1.2"),
        ))
        .extra(&format!(
            r#"[schedule]
roster_every = "1h"
jitter = "0s"
[admin]
listen = "127.0.0.1:{port}"
"#
        ))
        .write();
    let sock = dir.path().join("notify.sock");
    let start = |keep: bool| {
        let _ = std::fs::remove_file(&sock);
        let notify = UnixDatagram::bind(&sock).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let t = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sisync"))
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .env("NOTIFY_SOCKET", &sock)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut buf = [0u8; 1024];
        loop {
            let n = notify.recv(&mut buf).expect("READY=1 within 10 s");
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                break;
            }
        }
        let ready = t.elapsed();
        if !keep {
            // SAFETY: our child's pid, a valid signal.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            assert_eq!(child.wait().unwrap().code(), Some(0));
            (ready, None)
        } else {
            (ready, Some(child))
        }
    };
    let mut times: Vec<Duration> = (0..5).map(|_| start(false).0).collect();
    times.sort();
    println!(
        "startup to READY=1 with a {:.0} MB state database: median {:.0} ms, max {:.0} ms (target < 200 ms)",
        size as f64 / 1048576.0,
        times[2].as_secs_f64() * 1000.0,
        times[4].as_secs_f64() * 1000.0
    );

    let idle = env_u64("SISYNC_BENCH_IDLE_SECS", 60);
    let (_, child) = start(true);
    let mut child = child.unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(500));
    let cpu0 = proc_cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(idle));
    let cpu = proc_cpu_seconds(pid) - cpu0;
    let rss = proc_status_kb(pid, "VmRSS:");
    let hwm = proc_status_kb(pid, "VmHWM:");
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
    println!(
        "idle {idle} s: CPU {:.3} s ({:.3} s per minute; target < 0.1), RSS {:.1} MB (peak {:.1} MB; target < 30)",
        cpu,
        cpu * 60.0 / idle as f64,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}
