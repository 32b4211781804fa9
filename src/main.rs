use std::io::IsTerminal;

// mimalloc: the roster sync allocates many small strings; it is faster and
// fragments less than glibc malloc (see benches/roster.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use sisync::cli::{Cli, LogFormat};

fn init_logging(format: Option<LogFormat>) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,sisync=info"));
    let tty = std::io::stderr().is_terminal();
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
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
        LogFormat::Human if under_journald => builder.without_time().with_ansi(false).init(),
        LogFormat::Human => builder.with_ansi(tty).init(),
    }
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(sisync::exit::FAILURE);
        }
    };
    let code = rt.block_on(sisync::app::run(cli));
    std::process::exit(code);
}
