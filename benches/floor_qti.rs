//! The QTI floor of `bench/compare.sh` (issue 17): the same QTI results
//! files read by a bare quick-xml event loop and by sisync's reader
//! (`connector::results::source::qti::read`, every result built and dropped), each
//! streamed from the file through a 64 KiB buffer.
//!
//!   floor_qti bare DIR | floor_qti sisync DIR
//!
//! Prints the seconds the loop over every `*.xml` in DIR took (process
//! start and the directory listing not included).
//! Both run on the system allocator (the sisync binary uses mimalloc,
//! which makes the reader's small allocations cheaper than here); the
//! whole ingest row of `bench/compare.sh` runs the binary itself.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use quick_xml::events::Event;
use sisync::connector::results::source::qti::{QtiOptions, read};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    v.sort();
    v
}

/// Every event read, the text of every element touched.
fn bare(files: &[PathBuf]) -> usize {
    let mut starts = 0;
    let mut buf = Vec::with_capacity(8 << 10);
    for f in files {
        let file = File::open(f).expect("readable");
        let mut r = quick_xml::Reader::from_reader(BufReader::with_capacity(64 << 10, file));
        loop {
            match r.read_event_into(&mut buf).expect("well-formed") {
                Event::Start(_) => starts += 1,
                Event::Text(t) => starts += usize::from(t.is_empty()),
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
    }
    starts
}

fn sisync_reader(files: &[PathBuf]) -> usize {
    let opts = QtiOptions::default();
    let mut n = 0;
    for f in files {
        let file = File::open(f).expect("readable");
        let report = read(file, &f.display().to_string(), &opts, &mut |r| {
            std::hint::black_box(r);
            Ok(())
        })
        .expect("read");
        assert!(report.issues.is_empty(), "{:?}", report.issues.first());
        n += report.results;
    }
    n
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (mode, dir) = match args.as_slice() {
        [m, d] => (m.as_str(), Path::new(d)),
        [] => return eprintln!("floor_qti: a floor of bench/compare.sh; see its header"),
        _ => {
            eprintln!("usage: floor_qti bare|sisync DIR");
            std::process::exit(2);
        }
    };
    let files = files(dir);
    let t = Instant::now();
    let n = match mode {
        "bare" => bare(&files),
        "sisync" => sisync_reader(&files),
        _ => {
            eprintln!("usage: floor_qti bare|sisync DIR");
            std::process::exit(2);
        }
    };
    std::hint::black_box(n);
    println!("{:.4}", t.elapsed().as_secs_f64());
}
