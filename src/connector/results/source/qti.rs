//! IMS QTI Results Reporting XML, versions 2.1
//! (`http://www.imsglobal.org/xsd/imsqti_result_v2p1`) and 3.0
//! (`http://www.imsglobal.org/xsd/imsqti_result_v3p0`).
//!
//! # Reading
//! A document is streamed with quick-xml; memory does not grow with the
//! file. Every `assessmentResult` element, at any depth (a single result as
//! the root, or many under a wrapper element), gives one result per
//! `testResult`:
//! - candidate: `context/@sourcedId`;
//! - session: the first `context/sessionIdentifier` with an `identifier`
//!   (and its `sourceID`, the system that issued it);
//! - exam: `testResult/@identifier`; date: `testResult/@datestamp`;
//! - outcomes of the test (not of items): `SCORE`, `MAXSCORE`, `PASSED`,
//!   and the first of the configured grade outcomes (default `GRADE`).
//!
//! Names match by local name under a QTI results namespace (any prefix), or
//! without a namespace. An `assessmentResult` in another namespace, a
//! result without candidate or exam id, or a test result with none of
//! SCORE, PASSED or a grade is reported (file:line) and skipped; the rest of
//! the document is still read. A document that is not well-formed fails as
//! a whole. DTDs and custom entities are refused (see
//! `xml_input`).

pub mod config;

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};

use anyhow::{Context, Result, anyhow};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::connector::results::{Documents, Fetched, Remote};

use crate::connector::xml_input::{
    Counting, Twins, Utf8Xml, doctype_refused, local_name, plain_attrs, push_ref,
};
use crate::model::{ExamResult, ResultValue, SourceIssue};

pub const NS_V2P1: &[u8] = b"http://www.imsglobal.org/xsd/imsqti_result_v2p1";
pub const NS_V3P0: &[u8] = b"http://www.imsglobal.org/xsd/imsqti_result_v3p0";

/// Longest outcome value kept: a score or grade is short, and a value made
/// of many entity references or CDATA sections must not grow without end.
pub const MAX_VALUE: usize = 4096;

/// How outcomes are read.
#[derive(Debug, Clone)]
pub struct QtiOptions {
    /// Outcome identifiers that carry a grade, first match wins.
    pub grade_outcomes: Vec<String>,
}

impl Default for QtiOptions {
    fn default() -> Self {
        QtiOptions {
            grade_outcomes: vec!["GRADE".into()],
        }
    }
}

/// What reading one document found besides the results.
#[derive(Debug, Default)]
pub struct ReadReport {
    pub results: usize,
    pub issues: Vec<SourceIssue>,
    /// `2.1`, `3.0` or `unqualified` per namespace seen.
    pub versions: Vec<&'static str>,
}

/// The `assessmentResult` being read. Its values are empty when absent or
/// blank, and kept in the allocations of the one before (a result's values
/// are copied out of them).
#[derive(Default)]
struct Assessment {
    line: u64,
    candidate: String,
    session: String,
    session_source: String,
    skip: bool,
}

impl Assessment {
    /// The next result's, starting at `line`, in this one's allocations.
    fn next(mut self, line: u64) -> Assessment {
        self.line = line;
        self.skip = false;
        for v in [
            &mut self.candidate,
            &mut self.session,
            &mut self.session_source,
        ] {
            v.clear();
        }
        self
    }
}

/// Keep an attribute read by [`attrs_ref`] in `slot` (empty when absent or
/// blank, as [`attrs`] gives `None`).
fn keep(slot: &mut String, v: Option<Cow<'_, str>>) {
    slot.clear();
    if let Some(v) = v {
        slot.push_str(&v);
    }
}

#[derive(Default)]
struct Test {
    line: u64,
    exam: Option<String>,
    datestamp: Option<String>,
    score: Option<Parsed<f64>>,
    max_score: Option<Parsed<f64>>,
    passed: Option<Parsed<bool>>,
    grade: Option<(usize, String)>,
}

/// An outcome value, parsed as it is read (no string kept for a good
/// one); a bad one keeps its text for the report.
enum Parsed<T> {
    Good(T),
    Bad(String),
}

impl<T> Parsed<T> {
    fn of(text: &str, parse: fn(&str) -> Option<T>) -> Parsed<T> {
        parse(text).map_or_else(|| Parsed::Bad(text.to_string()), Parsed::Good)
    }
}

/// The outcome variable being read: which slot its first value goes to.
enum Slot {
    Score,
    MaxScore,
    Passed,
    Grade(usize),
    Ignored,
}

/// Stream one QTI results document named `name` (for messages), calling
/// `each` with every result. An error from `each` stops the read.
pub fn read<R: Read>(
    input: R,
    name: &str,
    opts: &QtiOptions,
    each: &mut dyn FnMut(ExamResult) -> Result<()>,
) -> Result<ReadReport> {
    // one reader per encoding, chosen once: no dispatch per event
    match Utf8Xml::new(BufReader::with_capacity(64 << 10, input))
        .map_err(|e| anyhow!("{name}:1: {e}"))?
    {
        Utf8Xml::Utf8(input) => read_utf8(input, name, opts, each),
        Utf8Xml::Decoded(input) => read_utf8(input, name, opts, each),
    }
}

fn read_utf8<R: BufRead>(
    input: R,
    name: &str,
    opts: &QtiOptions,
    each: &mut dyn FnMut(ExamResult) -> Result<()>,
) -> Result<ReadReport> {
    let mut reader = Reader::from_reader(Counting::buffered(input, 64 << 10));
    let c = reader.config_mut();
    c.check_end_names = true;
    c.expand_empty_elements = true;
    let mut report = ReadReport::default();
    let mut buf = Vec::with_capacity(8 << 10);
    // element depth, and the depth of the current assessmentResult
    let mut depth = 0usize;
    let mut assessment: Option<(usize, Assessment)> = None;
    // the last one's, for its allocations
    let mut spare = Assessment::default();
    let mut test: Option<(usize, Test)> = None;
    let mut slot: Option<(usize, Slot)> = None;
    let mut in_value = false;
    let mut value_seen = false;
    let mut text = String::new();
    let mut too_long = false;
    let mut seen_root = false;
    let mut scopes = Scopes::default();
    loop {
        // an event's line is counted only when asked for (a result's
        // start, an error), not for every event
        reader.get_mut().mark();
        macro_rules! at {
            () => {
                reader.get_mut().line()
            };
        }
        let fatal = |line: u64, what: String| anyhow!("{name}:{line}: {what}");
        let ev = match reader.read_event_into(&mut buf) {
            Ok(x) => x,
            Err(e) => {
                return Err(fatal(
                    at!(),
                    format!("XML is not well-formed ({e}); fix or export the file again"),
                ));
            }
        };
        match ev {
            Event::Start(e) => {
                seen_root = true;
                depth += 1;
                // only an assessmentResult's namespace is ever resolved, and
                // never one inside another: declarations within a result go
                // out of scope before the next one is resolved
                if assessment.is_none() {
                    scopes.enter(&e, depth);
                }
                let local = local_name(e.name().into_inner());
                if local == b"assessmentResult" && assessment.is_none() {
                    let mut a = std::mem::take(&mut spare).next(at!());
                    let qti_ns = match scopes.resolve(&e) {
                        Ns::Bound(NS_V2P1) => Some("2.1"),
                        Ns::Bound(NS_V3P0) => Some("3.0"),
                        Ns::Unbound => Some("unqualified"),
                        _ => None,
                    };
                    match qti_ns {
                        Some(v) => {
                            if !report.versions.contains(&v) {
                                report.versions.push(v);
                            }
                        }
                        None => {
                            a.skip = true;
                            report.issues.push(issue(
                                name,
                                a.line,
                                None,
                                "<assessmentResult> is not in the QTI 2.1 or 3.0 results namespace; skipped",
                            ));
                        }
                    }
                    assessment = Some((depth, a));
                } else if let Some((adepth, a)) = assessment.as_mut() {
                    if a.skip {
                    } else if local == b"context" && depth == *adepth + 1 {
                        let [c] = attrs_ref(&e, [b"sourcedId"]).map_err(|w| fatal(at!(), w))?;
                        keep(&mut a.candidate, c);
                    } else if local == b"sessionIdentifier" && depth == *adepth + 2 {
                        if a.session.is_empty() {
                            let [id, source] = attrs_ref(&e, [b"identifier", b"sourceID"])
                                .map_err(|w| fatal(at!(), w))?;
                            keep(&mut a.session, id);
                            keep(&mut a.session_source, source);
                        }
                    } else if local == b"testResult" && depth == *adepth + 1 {
                        let [exam, datestamp] = attrs(&e, [b"identifier", b"datestamp"])
                            .map_err(|w| fatal(at!(), w))?;
                        test = Some((
                            depth,
                            Test {
                                line: at!(),
                                exam,
                                datestamp,
                                ..Default::default()
                            },
                        ));
                    } else if local == b"outcomeVariable" {
                        if let Some((tdepth, _)) = &test {
                            if depth == tdepth + 1 {
                                let [id] =
                                    attrs_ref(&e, [b"identifier"]).map_err(|w| fatal(at!(), w))?;
                                let s = match id.as_deref().filter(|v| !v.is_empty()) {
                                    Some("SCORE") => Slot::Score,
                                    Some("MAXSCORE") => Slot::MaxScore,
                                    Some("PASSED") => Slot::Passed,
                                    Some(other) => {
                                        match opts.grade_outcomes.iter().position(|g| g == other) {
                                            Some(i) => Slot::Grade(i),
                                            None => Slot::Ignored,
                                        }
                                    }
                                    None => Slot::Ignored,
                                };
                                slot = Some((depth, s));
                                value_seen = false;
                            }
                        }
                    } else if local == b"value" {
                        if let Some((sdepth, _)) = &slot {
                            if depth == sdepth + 1 && !value_seen {
                                in_value = true;
                                too_long = false;
                                text.clear();
                            }
                        }
                    }
                }
            }
            Event::End(_) => {
                if in_value {
                    in_value = false;
                    value_seen = true;
                    if let (Some((_, s)), Some((_, t))) = (&slot, test.as_mut()) {
                        let v = trim(&text);
                        if too_long {
                            let a = assessment.as_ref().map(|(_, a)| a);
                            report.issues.push(issue(
                                name,
                                t.line,
                                a.map(|a| a.candidate.as_str()).filter(|c| !c.is_empty()),
                                format!(
                                    "an outcome value is longer than {MAX_VALUE} bytes; left out of the result"
                                ),
                            ));
                        }
                        match s {
                            _ if too_long => {}
                            Slot::Score => t.score = Some(Parsed::of(v, number)),
                            Slot::MaxScore => t.max_score = Some(Parsed::of(v, number)),
                            Slot::Passed => t.passed = Some(Parsed::of(v, boolean)),
                            Slot::Grade(i) => {
                                if t.grade.as_ref().is_none_or(|(j, _)| i < j) {
                                    t.grade = Some((*i, v.to_string()));
                                }
                            }
                            Slot::Ignored => {}
                        }
                    }
                }
                if slot.as_ref().is_some_and(|(d, _)| *d == depth) {
                    slot = None;
                }
                if test.as_ref().is_some_and(|(d, _)| *d == depth) {
                    let (_, t) = test.take().expect("checked");
                    let a = &assessment.as_ref().expect("a test is inside one").1;
                    if let Some(r) = finish(name, a, t, &mut report) {
                        report.results += 1;
                        each(r)?;
                    }
                }
                if assessment.as_ref().is_some_and(|(d, _)| *d == depth) {
                    spare = assessment.take().expect("checked").1;
                }
                scopes.leave(depth);
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) => {
                if in_value {
                    push_decoded(t.decode().ok(), &mut text, &mut too_long)
                        .ok_or_else(|| fatal(at!(), NOT_UTF8.into()))?;
                } else if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) {
                    return Err(fatal(
                        at!(),
                        "text outside the root element; fix or export the file again".into(),
                    ));
                }
            }
            Event::CData(t) if in_value => {
                push_decoded(t.decode().ok(), &mut text, &mut too_long)
                    .ok_or_else(|| fatal(at!(), NOT_UTF8.into()))?;
            }
            Event::GeneralRef(r) => {
                let mut one = String::new();
                push_ref(&mut one, &r).map_err(|w| fatal(at!(), w))?;
                if in_value {
                    push_capped(&mut text, &one, &mut too_long);
                }
            }
            Event::DocType(d) => {
                if doctype_refused(&d) {
                    return Err(fatal(
                        at!(),
                        "DOCTYPE with an internal DTD subset or <!ENTITY> declaration is refused (sisync never expands entities); export the results without a DTD".into(),
                    ));
                }
            }
            // its encoding was read by `Utf8Xml`
            Event::Decl(_)
            | Event::Empty(_)
            | Event::Comment(_)
            | Event::PI(_)
            | Event::CData(_) => {}
            Event::Eof => {
                if !seen_root {
                    return Err(fatal(
                        at!(),
                        "the document is empty; it is not a QTI results document".into(),
                    ));
                }
                if depth > 0 {
                    return Err(fatal(
                        at!(),
                        "the document ends inside an element; the file is truncated, export it again"
                            .into(),
                    ));
                }
                return Ok(report);
            }
        }
        buf.clear();
    }
}

/// The namespace declarations in scope, kept by hand: only an element whose
/// tag mentions `xmlns` has its attributes looked at (quick-xml's
/// `NsReader` parses every element's attributes for declarations, which
/// cost about as much as reading the document).
struct Scopes {
    /// (depth of the declaring element, where its prefix (empty: the
    /// default namespace) starts in `names`, where the namespace name
    /// (empty: undeclared) starts, where it ends), innermost last.
    bindings: Vec<(usize, usize, usize, usize)>,
    /// The prefixes and names of `bindings`, end to end: no allocation per
    /// declaration (exports declare the namespace on every result).
    names: Vec<u8>,
    /// Made once: a `memmem::find` per element would build it each time.
    xmlns: memchr::memmem::Finder<'static>,
}

impl Default for Scopes {
    fn default() -> Self {
        Scopes {
            bindings: Vec::new(),
            names: Vec::new(),
            xmlns: memchr::memmem::Finder::new(b"xmlns"),
        }
    }
}

/// What an element's prefix resolves to.
#[derive(Debug, PartialEq, Eq)]
enum Ns<'a> {
    /// No prefix and no default namespace.
    Unbound,
    Bound(&'a [u8]),
    /// A prefix without a declaration.
    Unknown,
}

impl Scopes {
    /// An element at `depth` starts: its declarations come into scope.
    fn enter(&mut self, e: &BytesStart<'_>, depth: usize) {
        if self.xmlns.find(e.attributes_raw()).is_none() {
            return;
        }
        // as NsReader: an attribute that cannot be read declares nothing
        // (reading the values reports it)
        for a in e.attributes().with_checks(false).flatten() {
            let key = a.key.as_ref();
            let prefix = if key == b"xmlns" {
                &b""[..]
            } else if let Some(p) = key.strip_prefix(b"xmlns:") {
                p
            } else {
                continue;
            };
            let start = self.names.len();
            self.names.extend_from_slice(prefix);
            let ns = self.names.len();
            self.names.extend_from_slice(&a.value);
            self.bindings.push((depth, start, ns, self.names.len()));
        }
    }

    /// The element at `depth` ends: its declarations go out of scope.
    fn leave(&mut self, depth: usize) {
        while let Some(&(d, start, _, _)) = self.bindings.last() {
            if d < depth {
                break;
            }
            self.bindings.pop();
            self.names.truncate(start);
        }
    }

    /// The namespace of an element (as `NsReader` resolves it).
    fn resolve(&self, e: &BytesStart<'_>) -> Ns<'_> {
        let name = e.name();
        let prefix = name.prefix();
        let prefix = prefix.as_ref().map_or(&b""[..], |p| p.as_ref());
        let found = self
            .bindings
            .iter()
            .rev()
            .find(|(_, start, ns, _)| &self.names[*start..*ns] == prefix);
        match found {
            Some(&(_, _, ns, end)) if end > ns => Ns::Bound(&self.names[ns..end]),
            Some(_) | None if prefix.is_empty() => Ns::Unbound,
            _ if prefix == b"xml" => Ns::Bound(b"http://www.w3.org/XML/1998/namespace"),
            _ => Ns::Unknown,
        }
    }
}

const NOT_UTF8: &str = "text is not valid UTF-8; export the file as UTF-8";

/// [`push_capped`] of text or CDATA that decoded (`Some`); `None` when it
/// did not.
fn push_decoded(
    decoded: Option<Cow<'_, str>>,
    text: &mut String,
    too_long: &mut bool,
) -> Option<()> {
    push_capped(text, &decoded?, too_long);
    Some(())
}

/// Append to an outcome value up to [`MAX_VALUE`] bytes; beyond, drop and
/// flag it.
fn push_capped(text: &mut String, s: &str, too_long: &mut bool) {
    if text.len() + s.len() > MAX_VALUE {
        *too_long = true;
    } else if !*too_long {
        text.push_str(s);
    }
}

fn issue(name: &str, line: u64, id: Option<&str>, reason: impl Into<String>) -> SourceIssue {
    SourceIssue {
        location: format!("{name}:{line}"),
        record_id: id.map(String::from),
        reason: reason.into(),
    }
}

/// Attributes by local name, unescaped with the predefined entities only,
/// trimmed, `None` when absent or blank; one pass over the element's
/// attributes for all of them, copied only when they must be kept.
fn attrs<const N: usize>(
    e: &BytesStart<'_>,
    want: [&[u8]; N],
) -> Result<[Option<String>; N], String> {
    Ok(attrs_ref(e, want)?.map(|v| v.filter(|v| !v.is_empty()).map(Cow::into_owned)))
}

/// [`attrs`] without a copy: trimmed, empty when the value is blank.
fn attrs_ref<'a, const N: usize>(
    e: &'a BytesStart<'_>,
    want: [&[u8]; N],
) -> Result<[Option<Cow<'a, str>>; N], String> {
    // the usual tag, plain `name="value"` pairs, straight from the tag
    // (quick-xml's iterator and its twin check cost about a tenth of the
    // whole read); twins and anything to normalise go the full way below
    if let Some(plain) = plain_attrs(e.attributes_raw(), want, Twins::FirstChecked) {
        return Ok(plain.map(|v| v.map(Cow::Borrowed)));
    }
    attrs_full(e, want)
}

/// [`attrs_ref`] through quick-xml's checked attribute iterator: any tag.
fn attrs_full<'a, const N: usize>(
    e: &'a BytesStart<'_>,
    want: [&[u8]; N],
) -> Result<[Option<Cow<'a, str>>; N], String> {
    let mut found: [Option<Cow<'a, str>>; N] = std::array::from_fn(|_| None);
    for a in e.attributes() {
        let a = a.map_err(|err| format!("bad attribute ({err}); fix or export the file again"))?;
        let local = a.key.local_name();
        let Some(i) = want.iter().position(|w| *w == local.as_ref()) else {
            continue;
        };
        if found[i].is_some() {
            // the first one counts, as before (a prefixed twin)
            continue;
        }
        // nothing to normalise (no reference, tab or line end) and UTF-8:
        // the value as it stands in the tag
        let plain = match a.value {
            Cow::Borrowed(raw) if raw.iter().all(|&b| b >= b' ' && b != b'&') => {
                std::str::from_utf8(raw).ok()
            }
            _ => None,
        };
        let v = match plain {
            Some(v) => Cow::Borrowed(v),
            None => a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| {
                    format!(
                        "attribute {}: {err}; sisync never expands entities other than the five predefined ones",
                        String::from_utf8_lossy(want[i])
                    )
                })?,
        };
        found[i] = Some(match v {
            Cow::Borrowed(b) => Cow::Borrowed(trim(b)),
            Cow::Owned(o) => Cow::Owned(trim(&o).to_string()),
        });
        // stop as one lookup per name did: attributes after the last
        // wanted one are not looked at
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    Ok(found)
}

/// `str::trim`, without its Unicode look-up for the usual value that
/// starts and ends with a visible ASCII character.
fn trim(s: &str) -> &str {
    let visible = |b: Option<&u8>| b.is_some_and(|&b| b > b' ' && b < 0x80);
    let b = s.as_bytes();
    if visible(b.first()) && visible(b.last()) {
        s
    } else {
        s.trim()
    }
}

/// A number as QTI writes it; a decimal comma is accepted too.
fn number(s: &str) -> Option<f64> {
    let s = s.trim();
    let v: f64 = if s.contains(',') {
        s.replace(',', ".").parse().ok()?
    } else {
        s.parse().ok()?
    };
    v.is_finite().then_some(v)
}

fn boolean(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") || s == "1" {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") || s == "0" {
        Some(false)
    } else {
        None
    }
}

/// A parsed outcome value; a bad one is reported through `bad`.
fn good<T>(v: Option<Parsed<T>>, bad: impl FnOnce(&str)) -> Option<T> {
    match v? {
        Parsed::Good(x) => Some(x),
        Parsed::Bad(raw) => {
            bad(&raw);
            None
        }
    }
}

fn finish(name: &str, a: &Assessment, t: Test, report: &mut ReadReport) -> Option<ExamResult> {
    if a.candidate.is_empty() {
        report.issues.push(issue(
            name,
            a.line,
            None,
            "<context> has no sourcedId: the candidate is unknown; result skipped",
        ));
        return None;
    }
    let candidate = a.candidate.clone();
    let Some(exam) = t.exam else {
        report.issues.push(issue(
            name,
            t.line,
            Some(&candidate),
            "<testResult> has no identifier: the exam is unknown; result skipped",
        ));
        return None;
    };
    let bad = |report: &mut ReadReport, what: &str, v: &str| {
        report.issues.push(issue(
            name,
            t.line,
            Some(&candidate),
            format!("{what} {v:?} is not valid; left out of the result"),
        ));
    };
    let score = good(t.score, |raw| bad(report, "SCORE", raw));
    let max_score = good(t.max_score, |raw| bad(report, "MAXSCORE", raw));
    let passed = good(t.passed, |raw| bad(report, "PASSED", raw));
    let grade = t.grade.map(|(_, g)| g).filter(|g| !g.is_empty());
    if score.is_none() && passed.is_none() && grade.is_none() {
        report.issues.push(issue(
            name,
            t.line,
            Some(&candidate),
            format!(
                "test result {exam} has no SCORE, PASSED or grade outcome; result skipped (check the platform's export settings)"
            ),
        ));
        return None;
    }
    let taken_at = t.datestamp.filter(|d| {
        let ok = chrono::DateTime::parse_from_rfc3339(d).is_ok()
            || chrono::NaiveDateTime::parse_from_str(d, "%Y-%m-%dT%H:%M:%S%.f").is_ok();
        if !ok {
            report.issues.push(issue(
                name,
                t.line,
                Some(&candidate),
                format!("datestamp {d:?} is not an xs:dateTime; result kept without a date"),
            ));
        }
        ok
    });
    Some(ExamResult {
        candidate,
        exam,
        session_id: given(&a.session),
        session_source: given(&a.session_source).filter(|_| !a.session.is_empty()),
        value: ResultValue {
            score,
            max_score,
            passed,
            grade,
        },
        taken_at,
        origin: origin(name, t.line),
        oke: None,
    })
}

/// A kept value, `None` when absent or blank.
fn given(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

/// `file:line`, where a result was read: one allocation of the right size
/// (`format!` went through the formatting machinery, guessed the length
/// short and grew the string: about 700 instructions per result).
fn origin(name: &str, line: u64) -> String {
    let mut line_text = itoa::Buffer::new();
    let line_text = line_text.format(line);
    let mut o = String::with_capacity(name.len() + 1 + line_text.len());
    o.push_str(name);
    o.push(':');
    o.push_str(line_text);
    o
}

/// The document URLs a results endpoint lists: a JSON array of URLs (or
/// of objects with `href` or `url`), bare or under `documents` or
/// `results`; relative URLs are resolved against the list URL.
pub async fn list_documents(http: &crate::http::Http, list_url: &str) -> Result<Vec<String>> {
    let reply = http
        .send(
            reqwest::Method::GET,
            list_url,
            None,
            "application/json",
            false,
        )
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&reply.body).map_err(|e| {
        anyhow!("{list_url}: the document list is not JSON ({e}); check results.source.list_url")
    })?;
    let items = match &v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) => match o
            .get("documents")
            .or_else(|| o.get("results"))
            .and_then(|x| x.as_array())
        {
            Some(a) => a,
            None => {
                return Err(anyhow!(
                    "{list_url}: expected a JSON array of document URLs (or one under \"documents\"); check results.source.list_url"
                ));
            }
        },
        _ => {
            return Err(anyhow!(
                "{list_url}: expected a JSON array of document URLs"
            ));
        }
    };
    let base = url::Url::parse(list_url)?;
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let href = match it {
            serde_json::Value::String(s) => Some(s.as_str()),
            serde_json::Value::Object(o) => o
                .get("href")
                .or_else(|| o.get("url"))
                .and_then(|x| x.as_str()),
            _ => None,
        };
        let Some(href) = href else {
            return Err(anyhow!(
                "{list_url}: a list entry has no URL (string, or object with href/url)"
            ));
        };
        let u = base
            .join(href)
            .map_err(|e| anyhow!("{list_url}: bad document URL {href:?} ({e})"))?;
        out.push(u.to_string());
    }
    Ok(out)
}

/// `ResultInput::read` of both transports: QTI with the outcome names that
/// carry a grade.
macro_rules! read_qti {
    () => {
        fn read(
            &self,
            input: &mut dyn Read,
            name: &str,
            _tag: &str,
            each: &mut dyn FnMut(ExamResult) -> Result<()>,
        ) -> Result<Vec<SourceIssue>> {
            read_with(input, name, &self.grade_outcomes, each)
        }
    };
}

impl crate::connector::results::ResultInput for config::QtiFolder {
    fn check(&self) -> String {
        format!(
            "qti-folder {} (QTI 2.1/3.0; files {} after reading)",
            self.path.display(),
            match self.after {
                crate::config::results::AfterRead::Move => "move to done/ or failed/",
                crate::config::results::AfterRead::Keep => "stay",
            }
        )
    }
    fn documents(&self) -> Documents<'_> {
        Documents::Folder {
            path: &self.path,
            extension: "xml",
            after: self.after,
            settle: self.settle,
        }
    }
    read_qti!();
    fn processed(&self) -> Option<(&std::path::Path, crate::connector::DocumentFormat)> {
        (self.after == crate::config::results::AfterRead::Move)
            .then_some((self.path.as_path(), crate::connector::DocumentFormat::Qti))
    }
}

/// QTI from either transport, with the outcome names that carry a grade.
fn read_with(
    input: &mut dyn Read,
    name: &str,
    grade_outcomes: &[String],
    each: &mut dyn FnMut(ExamResult) -> Result<()>,
) -> Result<Vec<SourceIssue>> {
    let o = QtiOptions {
        grade_outcomes: grade_outcomes.to_vec(),
    };
    Ok(read(input, name, &o, each)?.issues)
}

impl crate::connector::results::ResultInput for config::QtiHttp {
    fn check(&self) -> String {
        format!("qti-http {}", self.endpoint.base_url)
    }
    fn test_connection<'a>(
        &'a self,
        loaded: &'a crate::config::Loaded,
    ) -> crate::connector::source::BoxFuture<'a, crate::connector::source::ConnectionReport> {
        Box::pin(crate::connector::source::timed("results in", async move {
            let http = loaded
                .http_client("results.source", self)?
                .with_max_retries(0);
            let docs = list_documents(&http, &self.endpoint.base_url).await?;
            Ok(format!(
                "GET {}: OK, {} documents listed",
                self.endpoint.base_url,
                docs.len()
            ))
        }))
    }
    fn documents(&self) -> Documents<'_> {
        Documents::Remote
    }
    fn fetch<'a>(
        &'a self,
        loaded: &'a crate::config::Loaded,
    ) -> crate::connector::source::BoxFuture<'a, Result<Fetched>> {
        Box::pin(async move {
            let http = loaded.http_client("results.source", self)?;
            let urls = list_documents(&http, &self.endpoint.base_url)
                .await
                .context("cannot list result documents; nothing was read")?;
            let documents = urls
                .into_iter()
                .map(|origin| Remote {
                    origin,
                    tag: String::new(),
                    body: None,
                })
                .collect();
            Ok(Fetched { http, documents })
        })
    }
    read_qti!();
}

#[cfg(test)]
mod tests;
