//! Throughput and memory of the UWLR leerlinggegevens reader: a generated
//! `HaalLeerlinggegevens` answer (a SOAP envelope) for 50,000 leerlingen
//! with 8 memberships each (a stamgroep and 7 samengestelde groepen), and
//! 2,000 leerkrachten, parsed into the canonical roster, against a bare
//! quick-xml event loop over the same bytes.
//!
//! `cargo bench --bench uwlr` (set `UWLR_BENCH_SCALE=0.1` for a quick
//! run). Prints MB/s of both, their ratio (aim: at least 0.5), the same
//! ratio by CPU time (steadier while other processes share the cores) and
//! peak RSS. `UWLR_BENCH_READER_ONLY=N` only parses N times (for `perf`
//! or callgrind).

mod common;
use common::{peak_rss_mb, self_cpu_seconds};

use std::io::Write;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use quick_xml::Reader;
use quick_xml::events::Event;
use sisync::connector::source::uwlr::roster_from_answer;

const GIVEN: &[&str] = &[
    "Zoë", "Emre", "Anaïs", "Søren", "Lotte", "Aylin", "Jesse", "Noah",
];
const FAMILY: &[&str] = &[
    "Berg", "Özdemir", "Yılmaz", "Jansen", "Çelik", "Bakker", "Vries",
];

fn generate(
    leerlingen: usize,
    groepen: usize,
    samengesteld: usize,
    leerkrachten: usize,
) -> Vec<u8> {
    let mut w = Vec::with_capacity(leerlingen * 1200);
    let ns = "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens";
    write!(
        w,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\n<leerlinggegevens_antwoord xmlns=\"{ns}\"><leerlinggegevens>\n<school><schooljaar>2024-2025</schooljaar><brincode>99AA</brincode><dependancecode>00</dependancecode></school>\n<vestigingen><vestiging key=\"V1\"><naam>Hoofdgebouw</naam></vestiging></vestigingen>\n<groepen>\n"
    )
    .unwrap();
    for g in 0..groepen {
        writeln!(
            w,
            "  <groep key=\"G{g}\"><naam>{}{}</naam><jaargroep>{}</jaargroep></groep>",
            1 + g % 8,
            (b'A' + (g / 8 % 26) as u8) as char,
            1 + g % 8
        )
        .unwrap();
    }
    for s in 0..samengesteld {
        writeln!(
            w,
            "  <samengestelde_groep key=\"S{s}\"><naam>Cluster {s}</naam></samengestelde_groep>"
        )
        .unwrap();
    }
    writeln!(w, "</groepen>\n<leerlingen>").unwrap();
    for i in 0..leerlingen {
        let (given, family) = (GIVEN[i % GIVEN.len()], FAMILY[i % FAMILY.len()]);
        write!(
            w,
            "  <leerling key=\"L{i}\" eckid=\"https://ketenid.nl/201703/{i:0>64x}\">\n    <achternaam>{family}</achternaam><voorvoegsel>van der</voorvoegsel><voornamen>{given} Maria</voornamen><roepnaam>{given}</roepnaam>\n    <geboortedatum>2013-05-17</geboortedatum><geslacht>2</geslacht><jaargroep>{}</jaargroep>\n    <groep key=\"G{}\"/>\n    <samengestelde_groepen>",
            1 + i % 8,
            i % groepen
        )
        .unwrap();
        for k in 0..7 {
            write!(
                w,
                "<samengestelde_groep key=\"S{}\"/>",
                (i * 7 + k * 131) % samengesteld
            )
            .unwrap();
        }
        write!(
            w,
            "</samengestelde_groepen>\n    <vestiging key=\"V1\"/><gebruikersnaam>l{i}</gebruikersnaam><emailadres>l{i}@leerling.voorbeeld.nl</emailadres>\n    <land>NL</land><bsn>123456782</bsn><postcodenl>3511AB</postcodenl>\n  </leerling>\n"
        )
        .unwrap();
    }
    writeln!(w, "</leerlingen>\n<leerkrachten>").unwrap();
    for t in 0..leerkrachten {
        writeln!(
            w,
            "  <leerkracht key=\"T{t}\"><achternaam>{}</achternaam><roepnaam>{}</roepnaam><rol>LRK</rol><groepen><groep key=\"G{}\"/><samengestelde_groep key=\"S{}\"/></groepen></leerkracht>",
            FAMILY[t % FAMILY.len()],
            GIVEN[t % GIVEN.len()],
            t % groepen,
            t % samengesteld
        )
        .unwrap();
    }
    writeln!(
        w,
        "</leerkrachten>\n</leerlinggegevens></leerlinggegevens_antwoord></soap:Body></soap:Envelope>"
    )
    .unwrap();
    w
}

fn bare_loop(bytes: &[u8]) -> u64 {
    let mut r = Reader::from_reader(bytes);
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
    let scale: f64 = std::env::var("UWLR_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = |x: f64| ((x * scale) as usize).max(1);
    let (leerlingen, groepen, samengesteld, leerkrachten) =
        (n(50_000.0), n(2_000.0), n(3_000.0), n(2_000.0));
    let t = Instant::now();
    let bytes = generate(leerlingen, groepen, samengesteld, leerkrachten);
    let size = bytes.len() as f64 / 1e6;
    println!(
        "generated {size:.1} MB ({leerlingen} leerlingen, {groepen} groepen, {samengesteld} samengestelde groepen, {leerkrachten} leerkrachten) in {:.1?}",
        t.elapsed()
    );
    let rss0 = peak_rss_mb();
    if let Ok(n) = std::env::var("UWLR_BENCH_READER_ONLY") {
        for _ in 0..n.parse::<usize>().unwrap_or(10) {
            let r = roster_from_answer(&bytes, "99AA00", false).unwrap();
            std::hint::black_box(&r);
        }
        return;
    }
    bare_loop(&bytes);
    let (mut bare, mut bare_cpu) = (f64::MAX, f64::MAX);
    let mut events = 0;
    for _ in 0..3 {
        let (t, c) = (Instant::now(), self_cpu_seconds());
        events = bare_loop(&bytes);
        bare = bare.min(t.elapsed().as_secs_f64());
        bare_cpu = bare_cpu.min(self_cpu_seconds() - c);
    }
    let rss_bare = peak_rss_mb();
    let (mut ours, mut ours_cpu) = (f64::MAX, f64::MAX);
    let mut counts = (0, 0, 0, 0);
    for _ in 0..3 {
        let (t, c) = (Instant::now(), self_cpu_seconds());
        let r = roster_from_answer(&bytes, "99AA00", false).unwrap();
        ours = ours.min(t.elapsed().as_secs_f64());
        ours_cpu = ours_cpu.min(self_cpu_seconds() - c);
        counts = (
            r.persons.len(),
            r.groups.len(),
            r.memberships.len(),
            r.issues.len(),
        );
    }
    let rss_ours = peak_rss_mb();
    println!(
        "bare quick-xml loop: {events} events, {bare:.3} s, {:.0} MB/s",
        size / bare
    );
    println!(
        "sisync UWLR reader:  {} persons, {} groups, {} memberships, {} issues, {ours:.3} s, {:.0} MB/s",
        counts.0,
        counts.1,
        counts.2,
        counts.3,
        size / ours
    );
    println!(
        "ratio sisync / bare: {:.2} (by CPU time: {:.2}; {bare_cpu:.3} s against {ours_cpu:.3} s)",
        bare / ours,
        bare_cpu / ours_cpu
    );
    println!(
        "peak RSS: {rss0:.0} MB with the answer in memory, {rss_bare:.0} MB after the bare loop, {rss_ours:.0} MB after the reader (answer {size:.0} MB)"
    );
}
