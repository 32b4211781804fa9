//! Floor for bench/compare.sh: a bare `csv` crate read of a OneRoster CSV
//! export (every file, every field touched), nothing else. The export
//! folder comes from `SISYNC_FLOOR_DIR`.

use std::time::Instant;

fn main() {
    let Ok(dir) = std::env::var("SISYNC_FLOOR_DIR") else {
        eprintln!("set SISYNC_FLOOR_DIR to a OneRoster CSV export folder");
        return;
    };
    let t = Instant::now();
    let (mut rows, mut bytes) = (0usize, 0usize);
    for name in [
        "orgs",
        "academicSessions",
        "courses",
        "classes",
        "users",
        "roles",
        "enrollments",
    ] {
        let path = std::path::Path::new(&dir).join(format!("{name}.csv"));
        let Ok(mut r) = csv::Reader::from_path(&path) else {
            continue;
        };
        let mut rec = csv::ByteRecord::new();
        while r.read_byte_record(&mut rec).unwrap_or(false) {
            rows += 1;
            bytes += rec.iter().map(<[u8]>::len).sum::<usize>();
        }
    }
    println!(
        "floor_csv: {rows} rows, {bytes} field bytes in {:.3} s",
        t.elapsed().as_secs_f64()
    );
}
