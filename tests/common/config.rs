//! A typed builder for the `sisync.toml` of a test: the sections every
//! config needs come from one place, so a test states only what it is
//! about (its source, its platform, the extra sections it exercises).
//!
//! ```ignore
//! let loaded = TestConfig::new(dir)
//!     .source(Source::OneRosterCsv(export))
//!     .platform(Platform::CsvDrop("drop"))
//!     .extra("[privacy]\nfields = [\"name\"]\n")
//!     .load();
//! ```
//!
//! The text is written compactly, one key a line, in the order
//! `[institution]`, `[state]`, `[source]`, `[platform]`, then the extra
//! text as given (tests that check a config error's line number rely on
//! this layout).

use std::path::{Path, PathBuf};

use sisync::config::Loaded;

/// The `[source]` of a test config.
#[derive(Clone, Debug)]
pub enum Source {
    /// `kind = "oneroster-csv"` over an export folder.
    OneRosterCsv(PathBuf),
    /// `kind = "edexml"` over one file.
    Edexml(PathBuf),
    /// `kind = "ims-enterprise"` over one file.
    ImsEnterprise(PathBuf),
    /// Any body of `[source]` (its `kind` and keys, and sub-tables).
    Toml(String),
}

/// The `[platform]` of a test config.
#[derive(Clone, Debug)]
pub enum Platform {
    /// `kind = "csv-drop"` into a folder (relative to the config).
    CsvDrop(String),
    /// `kind = "scim"` at `base` with the bearer token in the file
    /// `token` (written by `write`) and a 5 s timeout.
    Scim { base: String, token: String },
    /// Any body of `[platform]`.
    Toml(String),
}

#[derive(Clone, Debug)]
pub struct TestConfig {
    dir: PathBuf,
    name: String,
    brin: String,
    state: Option<String>,
    source: Source,
    platform: Platform,
    institution_keys: String,
    platform_keys: String,
    extra: String,
}

impl TestConfig {
    /// A config in `dir`: institution "T" (BRIN 99AA), state `state.db`,
    /// the `fixtures/oneroster-1.2` export (read in place) into csv-drop
    /// folder `drop`.
    pub fn new(dir: &Path) -> TestConfig {
        TestConfig {
            dir: dir.to_path_buf(),
            name: "T".into(),
            brin: "99AA".into(),
            state: Some("state.db".into()),
            source: Source::OneRosterCsv(
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/oneroster-1.2"),
            ),
            platform: Platform::CsvDrop("drop".into()),
            institution_keys: String::new(),
            platform_keys: String::new(),
            extra: String::new(),
        }
    }

    pub fn institution(mut self, name: &str, brin: &str) -> Self {
        self.name = name.into();
        self.brin = brin.into();
        self
    }

    /// `[state] path`; `None` leaves the section out (the default path).
    pub fn state(mut self, path: Option<&str>) -> Self {
        self.state = path.map(String::from);
        self
    }

    pub fn source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// More `[institution]` keys (`environment = "acceptance"`).
    pub fn institution_keys(mut self, text: &str) -> Self {
        push_line(&mut self.institution_keys, text);
        self
    }

    /// More `[platform]` keys, after those of the platform's body (so not
    /// with a `Platform::Toml` body that opens a sub-table).
    pub fn platform_keys(mut self, text: &str) -> Self {
        push_line(&mut self.platform_keys, text);
        self
    }

    /// Text after `[platform]`: more platform keys first, then sections.
    pub fn extra(mut self, text: &str) -> Self {
        push_line(&mut self.extra, text);
        self
    }

    /// The config file's path (`dir/sisync.toml`).
    pub fn file(&self) -> PathBuf {
        self.dir.join("sisync.toml")
    }

    /// The TOML text.
    pub fn text(&self) -> String {
        let mut t = format!(
            "[institution]\nname = \"{}\"\nbrin = \"{}\"\n{}",
            self.name, self.brin, self.institution_keys
        );
        if let Some(s) = &self.state {
            t.push_str(&format!("[state]\npath = \"{s}\"\n"));
        }
        t.push_str("[source]\n");
        match &self.source {
            Source::OneRosterCsv(p) => t.push_str(&kind_path("oneroster-csv", p)),
            Source::Edexml(p) => t.push_str(&kind_path("edexml", p)),
            Source::ImsEnterprise(p) => t.push_str(&kind_path("ims-enterprise", p)),
            Source::Toml(body) => push_body(&mut t, body),
        }
        t.push_str("[platform]\n");
        match &self.platform {
            Platform::CsvDrop(p) => t.push_str(&format!("kind = \"csv-drop\"\npath = \"{p}\"\n")),
            Platform::Scim { base, .. } => t.push_str(&format!(
                "kind = \"scim\"\nbase_url = \"{base}\"\ntoken_file = \"token\"\ntimeout = \"5s\"\n"
            )),
            Platform::Toml(body) => push_body(&mut t, body),
        }
        t.push_str(&self.platform_keys);
        t.push_str(&self.extra);
        t
    }

    /// The line (from 1) of the first line of the text holding `needle`,
    /// for checking where a config error is placed.
    pub fn line_of(&self, needle: &str) -> usize {
        let text = self.text();
        let i = text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} is not in the config:\n{text}"));
        text[..i].matches('\n').count() + 1
    }

    /// Write the config (and the SCIM token file) and return its path.
    pub fn write(&self) -> PathBuf {
        std::fs::create_dir_all(&self.dir).unwrap();
        if let Platform::Scim { token, .. } = &self.platform {
            std::fs::write(self.dir.join("token"), format!("{token}\n")).unwrap();
        }
        let file = self.file();
        std::fs::write(&file, self.text()).unwrap();
        file
    }

    /// Write the config and load it; panics with the config error.
    pub fn load(&self) -> Loaded {
        let file = self.write();
        sisync::connector::load(&file).unwrap_or_else(|e| panic!("{e:#}"))
    }
}

fn kind_path(kind: &str, path: &Path) -> String {
    format!("kind = \"{kind}\"\npath = \"{}\"\n", path.display())
}

/// Append `text`, ending in a newline.
fn push_line(to: &mut String, text: &str) {
    to.push_str(text);
    if !text.is_empty() && !text.ends_with('\n') {
        to.push('\n');
    }
}

fn push_body(t: &mut String, body: &str) {
    t.push_str(body);
    if !body.ends_with('\n') {
        t.push('\n');
    }
}
