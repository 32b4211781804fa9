//! UWLR 2.2 leerlinggegevens (Edustandaard "Uitwisseling Leerlinggegevens
//! en Resultaten"), SOAP 1.1: the roster of one or more schools from
//! their LAS (Magister, Somtoday, ParnasSys, ESIS).
//!
//! # Operations
//! - `all-in-one`: one `HaalLeerlinggegevens` (`leerlinggegevens_verzoek`)
//!   per school.
//! - `staged`: `HaalStructuur` (school, vestigingen, groepen), then
//!   `HaalLeerlingen` and `HaalLeerkrachten` for `batch_groups` groups at a
//!   time; the last batch also asks for the leerlingen and leerkrachten
//!   bound to no group (`<groep/>` without key). A person in two batches
//!   is one person with the memberships of both.
//!
//! Each request carries the `autorisatie` header (the school's
//! `autorisatiesleutel`, `klantcode`, `klantnaam`), `schooljaar` (derived
//! from the date, a new year from `schooljaar_start`, or the explicit
//! `schooljaar`), `brincode` + `dependancecode`, `xsdversie` and, when
//! set, `gegevenssetid`.
//!
//! # All or nothing
//! Every school is read completely before anything is planned: a transport
//! failure, an HTTP error, a SOAP fault, an answer for another school or
//! school year, `geengegevens` or a school without a single leerling fails
//! the whole read, and nothing is written.
//!
//! # Incremental
//! Between full reads (`full_every`) an all-in-one request carries
//! `laatstontvangengegevens` (the start of the last good run). When every
//! school answers `geenwijzigingen`, the roster is "nothing changed" (a
//! delta without records: nobody leaves). When some school sends data, the
//! schools that said `geenwijzigingen` are read again in full, so the
//! roster is always a complete snapshot. In staged mode the
//! `HaalStructuur` request carries it: `geenwijzigingen` there is the
//! school's "nothing changed"; any data and the school's batches are read
//! in full (without it), so a batch can never answer "no changes" for
//! part of a school.

pub mod config;

use std::time::Instant;

use anyhow::{Result, anyhow};
use chrono::NaiveDate;

use crate::config::Loaded;
use crate::connector::school::{parse_month_day, school_year};
use crate::connector::source::Testing;
use crate::connector::source::uwlr_roster::{self, Answer, Builder, Rec, SchoolBlock};
use crate::http::Http;
use crate::model::{Completeness, Roster};
use crate::secret::Secret;
use crate::soap::{self, Autorisatie, BodyWriter, SoapClient, SoapError};
use config::{UwlrMode, UwlrSchool, UwlrSource};

pub const LG_NS: &str = "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens";

/// The operations: (name, SOAPAction, request element).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Leerlinggegevens,
    Structuur,
    Leerlingen,
    Leerkrachten,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Leerlinggegevens => "HaalLeerlinggegevens",
            Op::Structuur => "HaalStructuur",
            Op::Leerlingen => "HaalLeerlingen",
            Op::Leerkrachten => "HaalLeerkrachten",
        }
    }

    /// The SOAPAction of the WSDL binding.
    pub fn action(self) -> &'static str {
        match self {
            Op::Leerlinggegevens => "HaalLeerlinggegevens",
            Op::Structuur => {
                "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens/structuur_verzoek"
            }
            Op::Leerlingen => {
                "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens/leerlingen_verzoek"
            }
            Op::Leerkrachten => {
                "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens/leerkrachten_verzoek"
            }
        }
    }

    fn element(self) -> &'static str {
        match self {
            Op::Leerlinggegevens => "leerlinggegevens_verzoek",
            Op::Structuur => "structuur_verzoek",
            Op::Leerlingen => "leerlingen_verzoek",
            Op::Leerkrachten => "leerkrachten_verzoek",
        }
    }
}

/// A group reference in a staged request: (key, samengesteld); key None
/// asks for the persons bound to no group.
type GroupRef = (Option<String>, bool);

pub struct Uwlr {
    cfg: UwlrSource,
    client: SoapClient,
    keys: Vec<Secret>,
    schooljaar: String,
}

/// What one answer held.
#[derive(Default)]
struct Fetched {
    answer: Answer,
    block: Option<SchoolBlock>,
    leerlingen: u64,
    /// The groepen and samengestelde groepen defined in it.
    groups: Vec<GroupRef>,
}

/// The answer's bytes as they arrive, for the parser's thread.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        crate::connector::xml_input::read_buffered(self, buf)
    }
}

/// The answer's chunks read in place (the parser never copies them).
impl std::io::BufRead for ChannelReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos >= self.cur.len() {
            match self.rx.blocking_recv() {
                Some(Ok(v)) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(&[]),
            }
        }
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.cur.len());
    }
}

/// What one school answered.
enum SchoolRead {
    Data,
    NoChanges,
}

impl Uwlr {
    /// `keys`: the autorisatiesleutel of each school, in order.
    pub fn new(
        cfg: &UwlrSource,
        keys: Vec<Secret>,
        http: Http,
        headers: reqwest::header::HeaderMap,
        today: NaiveDate,
    ) -> Result<Uwlr> {
        let http = http.with_headers(headers);
        let start = parse_month_day(&cfg.schooljaar_start).unwrap_or((8, 1));
        Ok(Uwlr {
            schooljaar: cfg
                .schooljaar
                .clone()
                .unwrap_or_else(|| school_year(today, start)),
            client: SoapClient::new(http, &cfg.endpoint.base_url),
            cfg: cfg.clone(),
            keys,
        })
    }

    pub fn schooljaar(&self) -> &str {
        &self.schooljaar
    }

    /// The request envelope of `op` for school `n`.
    pub fn request(&self, n: usize, op: Op, since: Option<&str>, groups: &[GroupRef]) -> Vec<u8> {
        let school = &self.cfg.schools[n];
        let auth = Autorisatie {
            sleutel: &self.keys[n],
            klantcode: self.cfg.klantcode.trim(),
            klantnaam: self.cfg.klantnaam.trim(),
        };
        soap::envelope(&auth, |w| self.write_request(w, school, op, since, groups))
    }

    fn write_request(
        &self,
        w: &mut BodyWriter<'_>,
        school: &UwlrSchool,
        op: Op,
        since: Option<&str>,
        groups: &[GroupRef],
    ) -> std::io::Result<()> {
        use quick_xml::events::{BytesEnd, BytesStart, Event};
        let el = op.element();
        w.write_event(Event::Start(
            BytesStart::new(el).with_attributes([("xmlns", LG_NS)]),
        ))?;
        soap::text_element(w, "schooljaar", &self.schooljaar)?;
        soap::text_element(w, "brincode", school.brincode.trim())?;
        soap::text_element(w, "dependancecode", school.dependancecode.trim())?;
        soap::text_element(w, "xsdversie", self.cfg.xsdversie.trim())?;
        if let Some(g) = &self.cfg.gegevenssetid {
            soap::text_element(w, "gegevenssetid", g.trim())?;
        }
        if let Some(t) = since {
            soap::text_element(w, "laatstontvangengegevens", t)?;
        }
        if matches!(op, Op::Leerlingen | Op::Leerkrachten) {
            w.write_event(Event::Start(BytesStart::new("groepen")))?;
            for (key, samengesteld) in groups {
                let name = if *samengesteld {
                    "samengestelde_groep"
                } else {
                    "groep"
                };
                let mut e = BytesStart::new(name);
                if let Some(k) = key {
                    e.push_attribute(("key", k.as_str()));
                }
                w.write_event(Event::Empty(e))?;
            }
            w.write_event(Event::End(BytesEnd::new("groepen")))?;
        }
        w.write_event(Event::End(BytesEnd::new(el)))
    }

    fn origin(&self, n: usize, op: Op) -> String {
        format!(
            "{} [{} {}]",
            self.cfg.endpoint.base_url,
            self.cfg.schools[n].code(),
            op.name()
        )
    }

    fn explain(&self, n: usize, e: SoapError) -> anyhow::Error {
        let code = self.cfg.schools[n].code();
        let auth = match &e {
            SoapError::Http(h) => matches!(h.status, Some(401 | 403)),
            SoapError::Fault { fault, .. } => {
                let s = format!("{} {}", fault.code, fault.string).to_lowercase();
                s.contains("autoris") || s.contains("sleutel") || s.contains("auth")
            }
            SoapError::NoFault { .. } | SoapError::Broken { .. } => false,
        };
        let hint = if auth {
            format!(
                "the LAS refused the authorisation: check the autorisatiesleutel of school {code} (source.schools key), klantcode and klantnaam, and that the school activated the koppeling"
            )
        } else {
            "check the LAS and run again".to_string()
        };
        anyhow!("school {code}: {e}; nothing was sent to the platform. {hint}")
    }

    /// Send `op` for school `n` and stream the answer into `b` as it
    /// arrives (the answer is never held whole): what it held, or one
    /// error line.
    async fn fetch(
        &self,
        n: usize,
        op: Op,
        since: Option<&str>,
        groups: &[GroupRef],
        b: &mut Builder,
    ) -> Result<Fetched> {
        let env = self.request(n, op, since, groups);
        let mut resp = self
            .client
            .call_streaming(op.action(), &env, true)
            .await
            .map_err(|e| self.explain(n, e))?;
        let origin = self.origin(n, op);
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(32);
        let mut builder = std::mem::replace(b, Builder::new(false, Default::default()));
        builder.document(&origin);
        if let Some(n) = resp.content_length() {
            builder.expect(n);
        }
        let o = origin.clone();
        let parsing = tokio::task::spawn_blocking(move || {
            let mut f = Fetched::default();
            let input = ChannelReader {
                rx,
                cur: Vec::new(),
                pos: 0,
            };
            let answer = uwlr_roster::parse(input, &o, &mut |rec| {
                match &rec {
                    Rec::School(s) => f.block = Some(s.clone()),
                    Rec::Leerling(_) => f.leerlingen += 1,
                    Rec::Groep(g) => {
                        if let Some(k) = &g.key {
                            f.groups.push((Some(k.clone()), g.samengesteld));
                        }
                    }
                    _ => {}
                }
                builder.feed(rec)
            });
            (answer.map(|a| Fetched { answer: a, ..f }), builder)
        });
        let mut broken = None;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if tx.send(Ok(c.to_vec())).await.is_err() {
                        break; // the reader stopped at an error of its own
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let mut cause: &dyn std::error::Error = &e;
                    while let Some(next) = cause.source() {
                        cause = next;
                    }
                    broken = Some(cause.to_string());
                    let _ = tx
                        .send(Err(std::io::Error::other("the answer broke off")))
                        .await;
                    break;
                }
            }
        }
        drop(tx);
        let (result, builder) = parsing
            .await
            .map_err(|e| anyhow!("{origin}: the reader stopped ({e})"))?;
        *b = builder;
        if let Some(reason) = broken {
            return Err(self.explain(
                n,
                SoapError::Broken {
                    url: self.cfg.endpoint.base_url.clone(),
                    action: op.name().to_string(),
                    reason,
                },
            ));
        }
        let f = result?;
        if f.answer == Answer::Data {
            self.check_school(n, op, f.block.as_ref())?;
        }
        Ok(f)
    }

    /// The answer is for the school and year asked.
    fn check_school(&self, n: usize, op: Op, block: Option<&SchoolBlock>) -> Result<()> {
        let code = self.cfg.schools[n].code();
        let origin = self.origin(n, op);
        let Some(block) = block else {
            return Err(anyhow!(
                "{origin}: the answer holds neither a school block nor geenwijzigingen/geengegevens; is source.url a UWLR 2.2 leerlinggegevens service? Nothing was sent to the platform"
            ));
        };
        if let Some(got) = uwlr_roster::school_code(block) {
            if block.brincode.is_some() && got != code {
                return Err(anyhow!(
                    "{origin}: the LAS answered for school {got}, not {code}; nothing was sent to the platform. Check brincode and dependancecode, and the school's key"
                ));
            }
        }
        if let Some(y) = &block.schooljaar {
            if *y != self.schooljaar {
                return Err(anyhow!(
                    "{origin}: the LAS answered for schooljaar {y}, not {}; nothing was sent to the platform. Set source.schooljaar or source.schooljaar_start",
                    self.schooljaar
                ));
            }
        }
        Ok(())
    }

    /// Read school `n` into `b`.
    async fn read_school(
        &self,
        n: usize,
        since: Option<&str>,
        b: &mut Builder,
    ) -> Result<SchoolRead> {
        let school = &self.cfg.schools[n];
        let code = school.code();
        b.school(&code, school.name.as_deref().unwrap_or(&code));
        let refused = |op: Op| {
            anyhow!(
                "{}: the LAS answered geengegevens (no data) for school {code}, schooljaar {}; refused like an empty roster, nothing was sent to the platform. Check brincode/dependancecode and the school year, or ask the school whether the koppeling is active",
                self.origin(n, op),
                self.schooljaar
            )
        };
        let leerlingen = match self.cfg.mode {
            UwlrMode::AllInOne => {
                let op = Op::Leerlinggegevens;
                let f = self.fetch(n, op, since, &[], b).await?;
                match (f.answer, f.leerlingen) {
                    (Answer::NoChanges, _) if since.is_some() => {
                        return Ok(SchoolRead::NoChanges);
                    }
                    (Answer::NoChanges, _) => {
                        return Err(anyhow!(
                            "{}: the LAS answered geenwijzigingen to a full request; nothing was sent to the platform. Run again, or report this to the LAS supplier",
                            self.origin(n, op)
                        ));
                    }
                    (Answer::NoData, _) => return Err(refused(op)),
                    (Answer::Data, persons) => persons,
                }
            }
            UwlrMode::Staged => {
                // HaalStructuur: the groups, then their people per batch
                let op = Op::Structuur;
                let f = self.fetch(n, op, since, &[], b).await?;
                match f.answer {
                    Answer::NoData => return Err(refused(op)),
                    Answer::NoChanges if since.is_some() => {
                        return Ok(SchoolRead::NoChanges);
                    }
                    Answer::NoChanges => {
                        return Err(anyhow!(
                            "{}: the LAS answered geenwijzigingen to a full request; nothing was sent to the platform. Run again, or report this to the LAS supplier",
                            self.origin(n, op)
                        ));
                    }
                    Answer::Data => {}
                }
                let groups = f.groups;
                let mut batches: Vec<Vec<GroupRef>> = groups
                    .chunks(self.cfg.batch_groups.max(1))
                    .map(<[GroupRef]>::to_vec)
                    .collect();
                // persons in no group (stamgroep or subgroup)
                match batches.last_mut() {
                    Some(last) => last.extend([(None, false), (None, true)]),
                    None => batches.push(vec![(None, false), (None, true)]),
                }
                let mut persons = 0;
                for batch in &batches {
                    for op in [Op::Leerlingen, Op::Leerkrachten] {
                        // a batch of groups without people may be geengegevens
                        let f = self.fetch(n, op, None, batch, b).await?;
                        if f.answer == Answer::NoChanges {
                            return Err(anyhow!(
                                "{}: the LAS answered geenwijzigingen to a full request; nothing was sent to the platform. Run again",
                                self.origin(n, op)
                            ));
                        }
                        persons += f.leerlingen;
                    }
                }
                persons
            }
        };
        if leerlingen == 0 {
            return Err(anyhow!(
                "{}: school {code} has no leerlingen in the answer; refused like an empty roster (it would deactivate every student), nothing was sent to the platform. Check the school year and the koppeling",
                self.origin(n, Op::Leerlinggegevens)
            ));
        }
        Ok(SchoolRead::Data)
    }

    /// Read every school; `since` (an RFC 3339 time) asks for changes only.
    pub async fn read(&self, since: Option<&str>) -> Result<Roster> {
        let mut b = Builder::new(
            self.cfg.qualify_ids,
            uwlr_roster::role_map(&self.cfg.role_map),
        );
        let mut unchanged = Vec::new();
        let mut changed = 0usize;
        for n in 0..self.cfg.schools.len() {
            match self.read_school(n, since, &mut b).await? {
                SchoolRead::NoChanges => unchanged.push(n),
                SchoolRead::Data => changed += 1,
            }
        }
        let schools = self.cfg.schools.len();
        if changed == 0 {
            if let Some(t) = since {
                // nothing changed anywhere: a delta without records
                return Ok(Roster {
                    persons_completeness: Completeness::Delta,
                    groups_completeness: Completeness::Delta,
                    memberships_completeness: Completeness::Delta,
                    format: format!(
                        "UWLR 2.2, {schools} school(s), schooljaar {}: geenwijzigingen since {t}",
                        self.schooljaar
                    ),
                    ..Roster::default()
                });
            }
        }
        // some schools changed: the others in full, for a complete snapshot
        for n in unchanged {
            self.read_school(n, None, &mut b).await?;
        }
        let mode = match self.cfg.mode {
            UwlrMode::AllInOne => "HaalLeerlinggegevens",
            UwlrMode::Staged => "staged",
        };
        Ok(b.finish(format!(
            "UWLR 2.2 {mode}, {schools} school(s), schooljaar {}",
            self.schooljaar
        )))
    }

    /// `check-config --connect`: one authenticated request per school
    /// (`HaalStructuur` in staged mode, else `HaalLeerlinggegevens`), with
    /// its latency and the school year the LAS answered for.
    pub async fn ping(&self) -> Vec<(String, Result<String>)> {
        let mut out = Vec::new();
        for n in 0..self.cfg.schools.len() {
            let code = self.cfg.schools[n].code();
            let op = match self.cfg.mode {
                UwlrMode::AllInOne => Op::Leerlinggegevens,
                UwlrMode::Staged => Op::Structuur,
            };
            let r = async {
                let started = Instant::now();
                let mut b = Builder::new(false, Default::default());
                b.school(&code, &code);
                let f = self.fetch(n, op, None, &[], &mut b).await?;
                let took = started.elapsed();
                let (block, persons) = (f.block, f.leerlingen);
                let what = match f.answer {
                    Answer::NoData => format!(
                        "but the LAS has no data (geengegevens) for schooljaar {}; a sync would be refused",
                        self.schooljaar
                    ),
                    Answer::NoChanges => "answered geenwijzigingen".to_string(),
                    Answer::Data => {
                        let year = block
                            .and_then(|s| s.schooljaar)
                            .unwrap_or_else(|| "(not given)".into());
                        let roster = b.finish(String::new());
                        match op {
                            Op::Leerlinggegevens => format!(
                                "schooljaar {year}, {persons} leerlingen, {} groepen",
                                roster.groups.len()
                            ),
                            _ => format!("schooljaar {year}, {} groepen", roster.groups.len()),
                        }
                    }
                };
                Ok(format!(
                    "POST {} ({}): OK, authorised, {} ms; {what}",
                    self.cfg.endpoint.base_url,
                    op.name(),
                    took.as_millis()
                ))
            }
            .await;
            out.push((format!("source {code}"), r));
        }
        out
    }
}

/// One `HaalLeerlinggegevens` answer (a whole SOAP envelope) for school
/// `code` ("99AA00") as a roster: the mapping of [`Uwlr::read`] without
/// the network (for the benchmark and for tools).
pub fn roster_from_answer(body: &[u8], code: &str, qualify_ids: bool) -> Result<Roster> {
    let mut b = Builder::new(qualify_ids, Default::default());
    b.school(code, code);
    b.document(code);
    b.expect(body.len() as u64);
    match uwlr_roster::parse(body, code, &mut |r| b.feed(r))? {
        Answer::Data => Ok(b.finish("UWLR 2.2 HaalLeerlinggegevens".into())),
        Answer::NoChanges => Err(anyhow!("{code}: the answer is geenwijzigingen")),
        Answer::NoData => Err(anyhow!("{code}: the answer is geengegevens")),
    }
}

impl UwlrSource {
    /// The client for a run, with each school's key resolved now.
    pub fn connect(&self, loaded: &Loaded) -> Result<Uwlr> {
        let keys = (0..self.schools.len())
            .map(|n| loaded.school_key(n))
            .collect::<Result<Vec<_>, _>>()?;
        Uwlr::new(
            self,
            keys,
            loaded.http_client("source", self)?,
            loaded.uwlr_headers(self)?,
            chrono::Local::now().date_naive(),
        )
    }
}

impl crate::connector::source::RosterSource for UwlrSource {
    fn check(&self) -> Result<String> {
        Ok(format!(
            "uwlr {} ({}, {} school(s): {}; full read every {}; `check-config --connect` asks each school)",
            self.endpoint.base_url,
            match self.mode {
                UwlrMode::AllInOne => "HaalLeerlinggegevens",
                UwlrMode::Staged => "staged",
            },
            self.schools.len(),
            self.schools
                .iter()
                .map(|x| x.code())
                .collect::<Vec<_>>()
                .join(", "),
            humantime::format_duration(self.full_every)
        ))
    }
    fn register_line(&self) -> String {
        format!(
            "UWLR 2.2 leerlinggegevens service {}",
            self.endpoint.base_url
        )
    }
    fn status_json(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.endpoint.base_url,
            "schools": self.schools.iter().map(|x| x.code()).collect::<Vec<_>>(),
        })
    }
    fn full_every(&self) -> Option<std::time::Duration> {
        Some(self.full_every)
    }
    fn test_connection<'a>(&'a self, loaded: &'a Loaded) -> Testing<'a> {
        Box::pin(async move {
            match self.connect(loaded) {
                Ok(src) => src.ping().await,
                Err(e) => vec![("source link".to_string(), Err(e))],
            }
        })
    }
    fn read(&self, loaded: &Loaded, since: Option<&str>, _: &dyn Fn(u64)) -> Result<Roster> {
        let src = self.connect(loaded)?;
        crate::http::block_on(src.read(since))
    }
}
