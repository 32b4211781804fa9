use super::*;

fn fixture(rel: &str) -> std::fs::File {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/results")
        .join(rel);
    std::fs::File::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read_all(input: impl Read, opts: &QtiOptions) -> Result<(Vec<ExamResult>, ReadReport)> {
    let mut out = Vec::new();
    let report = read(input, "t.xml", opts, &mut |r| {
        out.push(r);
        Ok(())
    })?;
    Ok((out, report))
}

#[test]
fn reads_qti21_batch_with_prefixes_cdata_and_item_outcomes_ignored() {
    let (rs, rep) = read_all(fixture("inbox/session-batch-1.xml"), &QtiOptions::default()).unwrap();
    assert_eq!(rs.len(), 3, "{:?}", rep.issues);
    assert!(rep.issues.is_empty(), "{:?}", rep.issues);
    assert_eq!(rep.versions, vec!["2.1"]);
    let a = &rs[0];
    assert_eq!(a.candidate, "stu-1001");
    assert_eq!(a.exam, "EX-NED-2026-H5");
    assert_eq!(a.session_id.as_deref(), Some("S-1001"));
    // the item's SCORE of 1 must not override the test's
    assert_eq!(a.value.score, Some(42.5));
    assert_eq!(a.value.max_score, Some(60.0));
    assert_eq!(a.value.passed, Some(true));
    assert_eq!(a.value.grade.as_deref(), Some("7,1"));
    assert_eq!(a.taken_at.as_deref(), Some("2026-06-02T09:45:00Z"));
    assert_eq!(a.origin, "t.xml:8");
    // prefixed elements
    let b = &rs[1];
    assert_eq!(
        (
            b.candidate.as_str(),
            b.value.score,
            b.value.passed,
            b.value.grade.as_deref()
        ),
        ("stu-1002", Some(28.0), Some(false), None)
    );
    // PASSED only
    let c = &rs[2];
    assert_eq!((c.value.score, c.value.passed), (None, Some(true)));
}

#[test]
fn reads_qti30_with_configured_grade_outcome_and_first_session() {
    let opts = QtiOptions {
        grade_outcomes: vec!["CIJFER".into(), "GRADE".into()],
    };
    let (rs, rep) = read_all(fixture("inbox/session-S-2001.xml"), &opts).unwrap();
    assert_eq!(rep.versions, vec!["3.0"]);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].session_id.as_deref(), Some("S-2001"));
    assert_eq!(rs[0].value.grade.as_deref(), Some("8.2"));
    assert_eq!(rs[0].value.score, Some(55.0));
    // without the grade outcome configured, the grade is not read
    let (rs, _) = read_all(fixture("inbox/session-S-2001.xml"), &QtiOptions::default()).unwrap();
    assert_eq!(rs[0].value.grade, None);
    let (rs, _) = read_all(fixture("inbox/session-S-2002.xml"), &opts).unwrap();
    assert_eq!(
        (rs[0].candidate.as_str(), rs[0].value.score),
        ("stu-1005", Some(31.5))
    );
}

#[test]
fn several_test_results_in_one_assessment_result() {
    let doc = r#"<assessmentResult xmlns="http://www.imsglobal.org/xsd/imsqti_result_v3p0">
  <context sourcedId="s1"><sessionIdentifier sourceID="x" identifier="sess"/></context>
  <testResult identifier="T1" datestamp="2026-01-01T10:00:00Z">
    <outcomeVariable identifier="SCORE" cardinality="single" baseType="float"><value>1</value></outcomeVariable>
  </testResult>
  <testResult identifier="T2" datestamp="2026-01-01T11:00:00Z">
    <outcomeVariable identifier="SCORE" cardinality="single" baseType="float"><value>2</value></outcomeVariable>
  </testResult>
</assessmentResult>"#;
    let (rs, _) = read_all(doc.as_bytes(), &QtiOptions::default()).unwrap();
    let got: Vec<_> = rs
        .iter()
        .map(|r| (r.exam.as_str(), r.value.score))
        .collect();
    assert_eq!(got, vec![("T1", Some(1.0)), ("T2", Some(2.0))]);
    assert!(rs.iter().all(|r| r.session_id.as_deref() == Some("sess")));
}

#[test]
fn bad_records_are_reported_with_line_and_skipped() {
    let (rs, rep) = read_all(fixture("bad/missing-outcomes.xml"), &QtiOptions::default()).unwrap();
    // only stu-1008 survives (PASSED is valid; SCORE and the date are not)
    assert_eq!(rs.len(), 1, "{rs:?}");
    assert_eq!(rs[0].candidate, "stu-1008");
    assert_eq!(
        (
            rs[0].value.score,
            rs[0].value.passed,
            rs[0].taken_at.as_deref()
        ),
        (None, Some(true), None)
    );
    let text: Vec<String> = rep.issues.iter().map(|i| i.to_string()).collect();
    assert!(
        text[0].starts_with("t.xml:7: record stu-1006: test result EX-NED-2026-H5 has no SCORE"),
        "{text:?}"
    );
    assert!(text[1].contains("no sourcedId"), "{text:?}");
    assert!(
        text[2].contains("not in the QTI 2.1 or 3.0 results namespace"),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("SCORE \"ten\" is not valid")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|t| t.contains("datestamp \"yesterday\"")),
        "{text:?}"
    );
}

#[test]
fn truncated_and_entity_documents_fail_with_location() {
    let e = read_all(fixture("bad/truncated.xml"), &QtiOptions::default()).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.starts_with("t.xml:"), "{msg}");
    assert!(
        msg.contains("truncated") || msg.contains("not well-formed"),
        "{msg}"
    );
    let started = std::time::Instant::now();
    let e = read_all(fixture("bad/entities.xml"), &QtiOptions::default()).unwrap_err();
    assert!(format!("{e:#}").contains("t.xml:2: DOCTYPE"), "{e:#}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let e = read_all(&b"<a>&custom;</a>"[..], &QtiOptions::default()).unwrap_err();
    assert!(format!("{e:#}").contains("never expands entities"), "{e:#}");
    let e = read_all(&b""[..], &QtiOptions::default()).unwrap_err();
    assert!(format!("{e:#}").contains("empty"), "{e:#}");
}

#[test]
fn an_error_from_the_consumer_stops_the_read() {
    let mut n = 0;
    let e = read(
        fixture("inbox/session-batch-1.xml"),
        "t.xml",
        &QtiOptions::default(),
        &mut |_| {
            n += 1;
            anyhow::bail!("disk full")
        },
    )
    .unwrap_err();
    assert_eq!(n, 1);
    assert!(e.to_string().contains("disk full"));
}

/// A reader that produces a document of `n` results on the fly, so the
/// whole document never exists in memory.
struct Generated {
    i: usize,
    n: usize,
    pending: Vec<u8>,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            if self.i == 0 {
                self.pending.extend_from_slice(b"<results>");
            }
            if self.i < self.n {
                self.pending.extend_from_slice(
                    format!(
                        r#"<assessmentResult xmlns="http://www.imsglobal.org/xsd/imsqti_result_v2p1"><context sourcedId="s{0}"><sessionIdentifier sourceID="p" identifier="x{0}"/></context><testResult identifier="T" datestamp="2026-01-01T00:00:00Z"><outcomeVariable identifier="SCORE" cardinality="single" baseType="float"><value>{0}</value></outcomeVariable></testResult></assessmentResult>"#,
                        self.i
                    )
                    .as_bytes(),
                );
            } else if self.i == self.n {
                self.pending.extend_from_slice(b"</results>");
            } else {
                return Ok(0);
            }
            self.i += 1;
        }
        let k = buf.len().min(self.pending.len());
        buf[..k].copy_from_slice(&self.pending[..k]);
        self.pending.drain(..k);
        Ok(k)
    }
}

#[test]
fn streams_a_generated_document_result_by_result() {
    let mut count = 0usize;
    let mut last = 0.0;
    let rep = read(
        Generated {
            i: 0,
            n: 20_000,
            pending: Vec::new(),
        },
        "gen.xml",
        &QtiOptions::default(),
        &mut |r| {
            count += 1;
            last = r.value.score.unwrap();
            Ok(())
        },
    )
    .unwrap();
    assert_eq!((count, rep.results, last), (20_000, 20_000, 19_999.0));
}

#[test]
fn namespaces_resolve_through_ancestors_and_go_out_of_scope() {
    // a prefix declared on the wrapper, a default namespace undeclared
    // (unqualified), a prefix declared on a sibling only (unknown here),
    // and a redeclaration that ends with its element
    let doc = r#"<w:batch xmlns:w="urn:other" xmlns:q="http://www.imsglobal.org/xsd/imsqti_result_v3p0">
<q:assessmentResult><q:context sourcedId="s1"/><q:testResult identifier="E"><q:outcomeVariable identifier="SCORE"><q:value>1</q:value></q:outcomeVariable></q:testResult></q:assessmentResult>
<assessmentResult xmlns=""><context sourcedId="s2"/><testResult identifier="E"><outcomeVariable identifier="SCORE"><value>2</value></outcomeVariable></testResult></assessmentResult>
<x:wrap xmlns:x="urn:x"/>
<x:assessmentResult><x:context sourcedId="s3"/><x:testResult identifier="E"><x:outcomeVariable identifier="SCORE"><x:value>3</x:value></x:outcomeVariable></x:testResult></x:assessmentResult>
<w:inner xmlns:q="urn:other"><q:assessmentResult><q:context sourcedId="s4"/></q:assessmentResult></w:inner>
<q:assessmentResult><q:context sourcedId="s5"/><q:testResult identifier="E"><q:outcomeVariable identifier="SCORE"><q:value>5</q:value></q:outcomeVariable></q:testResult></q:assessmentResult>
</w:batch>"#;
    let (results, report) = read_all(doc.as_bytes(), &QtiOptions::default()).unwrap();
    let who: Vec<&str> = results.iter().map(|r| r.candidate.as_str()).collect();
    assert_eq!(who, ["s1", "s2", "s5"]);
    assert_eq!(report.versions, ["3.0", "unqualified"]);
    let skipped: Vec<&str> = report.issues.iter().map(|i| i.location.as_str()).collect();
    assert_eq!(skipped, ["t.xml:5", "t.xml:6"], "{:?}", report.issues);
}

/// The plain attributes read straight from the tag are what quick-xml's
/// checked iterator reads, and every tag the quick path leaves (twins,
/// references, white space to trim, non-ASCII, odd syntax) still reads
/// or fails as it did.
#[test]
fn the_quick_attribute_path_reads_what_the_full_one_reads() {
    let start = |tag: &str| match Reader::from_str(tag).read_event().unwrap() {
        Event::Start(e) | Event::Empty(e) => e.into_owned(),
        e => panic!("{e:?}"),
    };
    let want = [b"identifier".as_slice(), b"baseType"];
    for (tag, quick) in [
        (r#"<v identifier="SCORE" baseType="float"/>"#, true),
        (
            r#"<v baseType='float' cardinality="single" identifier="S">"#,
            true,
        ),
        (
            r#"<v q:identifier="S" other="a&amp;b" baseType="f"/>"#,
            true,
        ),
        ("<v\n\tidentifier=\"S\"\r\n baseType=\"\" >", true),
        (r#"<v identifier="S" baseType="f" identifier="T"/>"#, true),
        (r#"<v other="x"/>"#, true),
        (r#"<v/>"#, true),
        (r#"<v identifier="S" q:identifier="T" baseType="f"/>"#, true),
        (r#"<v other="1" other="2" identifier="S"/>"#, false),
        (r#"<v identifier="S" identifier="T"/>"#, false),
        (r#"<v identifier=" S " baseType="f"/>"#, false),
        (r#"<v identifier="S&amp;T"/>"#, false),
        (r#"<v identifier="S&#x31;"/>"#, false),
        (r#"<v identifier="S&bogus;"/>"#, false),
        ("<v identifier=\"S\t1\"/>", false),
        (r#"<v identifier="Sé"/>"#, false),
        (r#"<v identifier = "S"/>"#, false),
        (r#"<v identifier="S"baseType="f"/>"#, false),
        (r#"<v identifier=S/>"#, false),
        (r#"<v identifier/>"#, false),
    ] {
        let e = start(tag);
        let full = attrs_full(&e, want);
        let fast = plain_attrs(e.attributes_raw(), want, Twins::FirstChecked);
        assert_eq!(fast.is_some(), quick, "{tag}");
        if let Some(fast) = fast {
            assert_eq!(Ok(fast.map(|v| v.map(Cow::Borrowed))), full, "{tag}");
        }
        assert_eq!(attrs_ref(&e, want), full, "{tag}");
    }
}
