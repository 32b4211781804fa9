//! Fuzzing the QTI results reader (`connector::results::source::qti`) with proptest:
//! whatever the bytes, it never panics, its memory does not grow with the
//! input (streaming, values capped), and every result in a document is
//! either read or reported as a skipped record.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;

use proptest::prelude::*;
use sisync::connector::results::source::qti::{
    self as qti_results, MAX_VALUE, QtiOptions, ReadReport,
};
use sisync::model::ExamResult;

/// Counts this thread's live heap bytes and their peak.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|l| {
        let n = l.get() + delta;
        l.set(n);
        let _ = PEAK.try_with(|p| p.set(p.get().max(n)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            track(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        track(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            track(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Read `input`, dropping each result after a look; with the peak of heap
/// bytes the read needed beyond what was live before.
fn read(input: impl Read) -> (anyhow::Result<ReadReport>, usize, isize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let mut n = 0;
    let r = qti_results::read(
        input,
        "f.xml",
        &QtiOptions::default(),
        &mut |r: ExamResult| {
            assert!(!r.candidate.is_empty() && !r.exam.is_empty());
            n += 1;
            Ok(())
        },
    );
    let peak = PEAK.with(Cell::get) - base;
    (r, n, peak)
}

/// Working memory of a read: the 64 KiB input buffer, the event buffer and
/// small records. Anything near the input size would mean it is collected.
const WORKING: isize = 256 << 10;

fn skipped(r: &ReadReport) -> usize {
    r.issues
        .iter()
        .filter(|i| i.reason.contains("skipped"))
        .count()
}

/// One generated `assessmentResult` with one `testResult`.
#[derive(Debug, Clone)]
struct Rec {
    ns: &'static str,
    candidate: Option<String>,
    session: Option<String>,
    exam: Option<String>,
    score: Option<String>,
    max_score: Option<String>,
    passed: Option<String>,
    grade: Option<String>,
    datestamp: Option<String>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn number(s: &str) -> Option<f64> {
    s.trim()
        .replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

impl Rec {
    /// Whether the reader must give a result for it.
    fn readable(&self) -> bool {
        let ns_ok = self.ns != "urn:other";
        let passed = self
            .passed
            .as_deref()
            .is_some_and(|p| matches!(p, "true" | "false" | "1" | "0"));
        let score = self.score.as_deref().and_then(number).is_some();
        let grade = self.grade.as_deref().is_some_and(|g| !g.trim().is_empty());
        ns_ok && self.candidate.is_some() && self.exam.is_some() && (score || passed || grade)
    }

    fn xml(&self) -> String {
        let attr = |k: &str, v: &Option<String>| {
            v.as_ref()
                .map(|v| format!(" {k}=\"{}\"", esc(v)))
                .unwrap_or_default()
        };
        let ns = if self.ns.is_empty() {
            String::new()
        } else {
            format!(" xmlns=\"{}\"", self.ns)
        };
        let mut x = format!(
            "<assessmentResult{ns}>\n<context{}><sessionIdentifier sourceID=\"https://p.example\"{}/></context>\n<testResult{}{}>\n",
            attr("sourcedId", &self.candidate),
            attr("identifier", &self.session),
            attr("identifier", &self.exam),
            attr("datestamp", &self.datestamp),
        );
        for (id, v) in [
            ("SCORE", &self.score),
            ("MAXSCORE", &self.max_score),
            ("PASSED", &self.passed),
            ("GRADE", &self.grade),
        ] {
            if let Some(v) = v {
                x.push_str(&format!(
                    "<outcomeVariable identifier=\"{id}\"><value>{}</value></outcomeVariable>\n",
                    esc(v)
                ));
            }
        }
        x.push_str("</testResult>\n</assessmentResult>\n");
        x
    }
}

fn ident() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,12}"
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1.0e6f64..1.0e6).prop_map(|v| v.to_string()),
        (0u32..1000, 0u32..10).prop_map(|(a, b)| format!("{a},{b}")),
        "[a-z ]{0,6}",
    ]
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        prop_oneof![
            Just("http://www.imsglobal.org/xsd/imsqti_result_v2p1"),
            Just("http://www.imsglobal.org/xsd/imsqti_result_v3p0"),
            Just(""),
            Just("urn:other"),
        ],
        proptest::option::of(ident()),
        proptest::option::of(ident()),
        proptest::option::of(ident()),
        proptest::option::of(value()),
        proptest::option::of(value()),
        proptest::option::of(prop_oneof![
            Just("true".to_string()),
            Just("false".to_string()),
            Just("1".to_string()),
            Just("maybe".to_string()),
        ]),
        proptest::option::of("[ -~äé€]{0,16}"),
        proptest::option::of(prop_oneof![
            Just("2026-06-02T09:45:00Z".to_string()),
            Just("gisteren".to_string()),
        ]),
    )
        .prop_map(
            |(ns, candidate, session, exam, score, max_score, passed, grade, datestamp)| Rec {
                ns,
                candidate,
                session,
                exam,
                score,
                max_score,
                passed,
                grade,
                datestamp,
            },
        )
}

fn document(recs: &[Rec]) -> String {
    let mut d = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<results>\n");
    for r in recs {
        d.push_str(&r.xml());
    }
    d.push_str("</results>\n");
    d
}

proptest! {
    /// A well-formed document: each record read or reported as skipped.
    #[test]
    fn every_record_is_read_or_reported(recs in proptest::collection::vec(rec(), 0..24)) {
        let doc = document(&recs);
        let (r, n, peak) = read(doc.as_bytes());
        let report = r.unwrap();
        let want = recs.iter().filter(|r| r.readable()).count();
        prop_assert_eq!(n, want, "{:?}", report.issues);
        prop_assert_eq!(report.results, n);
        prop_assert_eq!(n + skipped(&report), recs.len(), "{:?}", report.issues);
        prop_assert!(peak < WORKING + 4 * doc.len() as isize, "peak {}", peak);
    }

    /// The same documents damaged: cut, bytes changed, bytes inserted. Read
    /// or refused with a message, never a panic, and never more results
    /// than records.
    #[test]
    fn damaged_documents_never_panic(
        recs in proptest::collection::vec(rec(), 1..8),
        cut in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let mut doc = document(&recs).into_bytes();
        for (at, b) in edits {
            let i = at.index(doc.len());
            doc[i] = b;
        }
        doc.truncate(cut.index(doc.len() + 1));
        let (r, n, peak) = read(&doc[..]);
        match r {
            Ok(report) => prop_assert!(n + skipped(&report) <= recs.len() + 1),
            Err(e) => prop_assert!(e.to_string().starts_with("f.xml:"), "{e}"),
        }
        prop_assert!(peak < WORKING + 4 * doc.len() as isize, "peak {}", peak);
    }

    /// Arbitrary bytes.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (_, _, peak) = read(&bytes[..]);
        prop_assert!(peak < WORKING + 4 * bytes.len() as isize, "peak {}", peak);
    }
}

/// A document of `n` copies of one record, made as it is read.
struct Repeat {
    head: std::io::Cursor<Vec<u8>>,
    rec: Vec<u8>,
    left: usize,
    pos: usize,
    tail: std::io::Cursor<Vec<u8>>,
}

impl Read for Repeat {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.head.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        if self.left > 0 {
            let k = (self.rec.len() - self.pos).min(buf.len());
            buf[..k].copy_from_slice(&self.rec[self.pos..self.pos + k]);
            self.pos += k;
            if self.pos == self.rec.len() {
                self.pos = 0;
                self.left -= 1;
            }
            return Ok(k);
        }
        self.tail.read(buf)
    }
}

#[test]
fn memory_does_not_grow_with_the_number_of_results() {
    let rec = Rec {
        ns: "http://www.imsglobal.org/xsd/imsqti_result_v2p1",
        candidate: Some("stu-1".into()),
        session: Some("S-1".into()),
        exam: Some("EX-1".into()),
        score: Some("7,5".into()),
        max_score: Some("10".into()),
        passed: None,
        grade: None,
        datestamp: None,
    };
    let repeat = |n| Repeat {
        head: std::io::Cursor::new(b"<results>\n".to_vec()),
        rec: rec.xml().into_bytes(),
        left: n,
        pos: 0,
        tail: std::io::Cursor::new(b"</results>\n".to_vec()),
    };
    let (r, n, small) = read(repeat(10));
    assert_eq!((r.unwrap().results, n), (10, 10));
    let (r, n, big) = read(repeat(100_000)); // about 30 MB
    assert_eq!((r.unwrap().results, n), (100_000, 100_000));
    assert!(big < WORKING, "peak {big} bytes for 100000 results");
    assert!(big < small + (64 << 10), "{small} → {big}");
}

#[test]
fn a_value_of_endless_references_is_capped_and_reported() {
    let refs = "&amp;".repeat(1_000_000);
    let doc = format!(
        r#"<assessmentResult xmlns="http://www.imsglobal.org/xsd/imsqti_result_v2p1"><context sourcedId="stu-1"/><testResult identifier="EX-1"><outcomeVariable identifier="GRADE"><value>{refs}</value></outcomeVariable><outcomeVariable identifier="SCORE"><value>5</value></outcomeVariable></testResult></assessmentResult>"#
    );
    let (r, n, peak) = read(doc.as_bytes());
    let report = r.unwrap();
    assert_eq!(n, 1, "{:?}", report.issues);
    assert!(
        report.issues[0]
            .reason
            .contains(&format!("longer than {MAX_VALUE} bytes")),
        "{:?}",
        report.issues
    );
    assert!(peak < WORKING, "peak {peak}");
}
