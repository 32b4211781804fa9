use std::io::IsTerminal;

// mimalloc: the roster sync allocates many small strings; it is faster and
// fragments less than glibc malloc (see benches/roster.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use sisync::cli::{Cli, Color, LogFormat};

fn init_logging(format: Option<LogFormat>, color: Color) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,sisync=info"));
    let tty = std::io::stderr().is_terminal();
    let under_journald = stderr_is_journal();
    // NO_COLOR (no-color.org) unless --color always
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => tty && !no_color,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format.unwrap_or(if tty || under_journald {
        LogFormat::Human
    } else {
        LogFormat::Json
    }) {
        LogFormat::Json => builder.json().init(),
        // the journal stamps the time; the <N> prefix gives the priority
        LogFormat::Human if under_journald => builder
            .with_writer(sisync::journal::JournalStderr)
            .without_time()
            .with_ansi(false)
            .init(),
        LogFormat::Human => builder
            .with_writer(sisync::journal::StderrAroundBar)
            .with_ansi(ansi)
            .init(),
    }
}

/// True when stderr is the journal stream systemd set up for this service:
/// `JOURNAL_STREAM` holds `device:inode` of that stream, and a child that
/// inherited the variable but writes elsewhere (a pipe, a file) does not
/// match. The journal stamps lines itself, so sisync leaves out the time.
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat writes only into the zeroed struct we pass.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(2, &mut st) == 0 && st.st_dev as u64 == dev && st.st_ino as u64 == ino
    }
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.color);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(sisync::exit::Exit::Failure.code());
        }
    };
    // how the command ended, or why it stopped: one line on stderr and
    // the documented exit code (sisync::exit)
    let code = sisync::exit::code(rt.block_on(sisync::app::run(cli)));
    std::process::exit(code);
}
