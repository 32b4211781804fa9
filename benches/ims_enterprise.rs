//! Throughput and memory of the IMS Enterprise reader on a large generated
//! document (50,000 persons, 3,000 classes, 400,000 member elements), against
//! a bare quick-xml event loop over the same file.
//!
//! `cargo bench --bench ims_enterprise` (set `IMS_BENCH_SCALE=0.1` for a
//! quick run). Prints MB/s of both, their ratio (aim: at least 0.45), and
//! peak RSS.

mod common;
use common::{peak_rss_mb, self_cpu_seconds};

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

// the same allocator as the sisync binary
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use quick_xml::Reader;
use quick_xml::events::Event;
use sisync::connector::source::ims_enterprise::ImsEnterprise;
use sisync::connector::source::ims_enterprise::config::ImsEnterpriseSource;

const GIVEN: &[&str] = &[
    "Zoë", "Emre", "Anaïs", "Søren", "Lotte", "Aylin", "Jesse", "Noah",
];
const FAMILY: &[&str] = &[
    "Berg", "Özdemir", "Yılmaz", "Jansen", "Çelik", "Bakker", "Vries",
];

fn generate(path: &Path, persons: usize, classes: usize, members: usize) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    writeln!(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(
        w,
        "<enterprise>\n  <properties>\n    <datasource>BenchSIS</datasource>\n    <datetime>2026-09-01T08:00:00</datetime>\n  </properties>"
    )?;
    for i in 0..persons {
        let (given, family) = (GIVEN[i % GIVEN.len()], FAMILY[i % FAMILY.len()]);
        let (kind, role) = if i % 20 == 0 {
            ("Faculty", "employeenumber")
        } else {
            ("Student", "studentnumber")
        };
        write!(
            w,
            "  <person recstatus=\"1\">\n    <sourcedid><source>BenchSIS</source><id>p-{i}</id></sourcedid>\n    <userid>user.{i}</userid>\n    <userid useridtype=\"{role}\">{i}</userid>\n    <name>\n      <fn>{given} van der {family}</fn>\n      <n>\n        <family>{family}</family>\n        <given>{given}</given>\n        <partname partnametype=\"Prefix\">van der</partname>\n      </n>\n    </name>\n    <email>user.{i}@leerling.voorbeeld.nl</email>\n    <institutionrole primaryrole=\"Yes\" institutionroletype=\"{kind}\"/>\n"
        )?;
        if i % 10 == 0 {
            write!(
                w,
                "    <extension>\n      <extraTimePercent>25</extraTimePercent>\n      <screenReader>true</screenReader>\n    </extension>\n"
            )?;
        }
        writeln!(w, "  </person>")?;
    }
    writeln!(
        w,
        "  <group>\n    <sourcedid><source>BenchSIS</source><id>school</id></sourcedid>\n    <grouptype><typevalue level=\"1\">School</typevalue></grouptype>\n    <description><long>Bench College</long></description>\n    <org><orgname>Bench College</orgname><id>99AA00</id></org>\n  </group>"
    )?;
    for c in 0..classes {
        writeln!(
            w,
            "  <group>\n    <sourcedid><source>BenchSIS</source><id>class-{c}</id></sourcedid>\n    <grouptype>\n      <scheme>BenchSIS</scheme>\n      <typevalue level=\"1\">Class</typevalue>\n    </grouptype>\n    <description>\n      <short>c{c}</short>\n      <long>Wiskunde &amp; rekenen {c}</long>\n    </description>\n    <relationship relation=\"1\">\n      <sourcedid><source>BenchSIS</source><id>school</id></sourcedid>\n      <label>School</label>\n    </relationship>\n  </group>"
        )?;
    }
    let per_class = members / classes;
    for c in 0..classes {
        writeln!(
            w,
            "  <membership>\n    <sourcedid><source>BenchSIS</source><id>class-{c}</id></sourcedid>"
        )?;
        for k in 0..per_class {
            let p = (c * 7919 + k * 104_729) % persons;
            let rt = if p % 20 == 0 { "02" } else { "01" };
            writeln!(
                w,
                "    <member>\n      <sourcedid><source>BenchSIS</source><id>p-{p}</id></sourcedid>\n      <idtype>1</idtype>\n      <role roletype=\"{rt}\" recstatus=\"1\">\n        <status>1</status>\n        <timeframe><begin restrict=\"0\">2026-08-24</begin><end restrict=\"0\">2027-07-16</end></timeframe>\n      </role>\n    </member>"
            )?;
        }
        writeln!(w, "  </membership>")?;
    }
    writeln!(w, "</enterprise>")?;
    w.flush()
}

fn bare_loop(path: &Path) -> u64 {
    let mut r = Reader::from_reader(BufReader::with_capacity(
        256 << 10,
        File::open(path).unwrap(),
    ));
    let mut buf = Vec::with_capacity(8 << 10);
    let mut events = 0u64;
    loop {
        match r.read_event_into(&mut buf).unwrap() {
            Event::Eof => break,
            _ => events += 1,
        }
        buf.clear();
    }
    events
}

fn main() {
    let scale: f64 = std::env::var("IMS_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = |x: f64| ((x * scale) as usize).max(1);
    let (persons, classes, members) = (n(50_000.0), n(3_000.0), n(400_000.0));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.xml");
    let t = Instant::now();
    generate(&path, persons, classes, members).unwrap();
    let size = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
    println!(
        "generated {size:.1} MB ({persons} persons, {classes} classes, {} members) in {:.1?}",
        (members / classes) * classes,
        t.elapsed()
    );
    let rss0 = peak_rss_mb();

    // warm the page cache once, then measure each twice and keep the best
    bare_loop(&path);
    let (mut bare, mut bare_cpu) = (f64::MAX, f64::MAX);
    let mut events = 0;
    for _ in 0..2 {
        let (t, c) = (Instant::now(), self_cpu_seconds());
        events = bare_loop(&path);
        bare = bare.min(t.elapsed().as_secs_f64());
        bare_cpu = bare_cpu.min(self_cpu_seconds() - c);
    }
    let rss_bare = peak_rss_mb();
    let cfg = ImsEnterpriseSource {
        path: path.clone(),
        role_map: Default::default(),
        qualify_ids: false,
        accommodations: Default::default(),
    };
    let src = ImsEnterprise::new(&cfg);
    let mut ours = f64::MAX;
    let mut cpu = f64::MAX;
    let mut counts = (0, 0, 0, 0);
    for _ in 0..3 {
        let (t, c) = (Instant::now(), self_cpu_seconds());
        let r = src.read(&|_| {}).unwrap();
        ours = ours.min(t.elapsed().as_secs_f64());
        cpu = cpu.min(self_cpu_seconds() - c);
        counts = (
            r.persons.len(),
            r.groups.len(),
            r.memberships.len(),
            r.issues.len(),
        );
    }
    let rss_ours = peak_rss_mb();
    println!(
        "bare quick-xml loop: {events} events, {:.3} s, {:.0} MB/s",
        bare,
        size / bare
    );
    println!(
        "sisync IMS reader:   {} persons, {} groups, {} memberships, {} issues, {:.3} s ({:.2} s CPU), {:.0} MB/s",
        counts.0,
        counts.1,
        counts.2,
        counts.3,
        ours,
        cpu,
        size / ours
    );
    // by CPU time too: steadier while other processes share the cores
    println!(
        "ratio sisync / bare: {:.2} (by CPU time: {:.2}; {bare_cpu:.3} s against {cpu:.3} s)",
        bare / ours,
        bare_cpu / cpu
    );
    println!(
        "peak RSS: {rss0:.0} MB after generating, {rss_bare:.0} MB after the bare loop, {rss_ours:.0} MB after the reader (file {size:.0} MB)"
    );
}
