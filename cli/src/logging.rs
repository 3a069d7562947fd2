//! How the command logs: the filter (`--log-level`, RUST_LOG) and the format (text or JSON).

use crate::args::{Command, LogFormat};
use crate::settings::Settings;

/// Libraries that log their internals at info; kept at warn unless asked for by name.
pub(crate) const QUIET_LIBRARIES: &str =
    "tantivy=warn,sled=warn,quinn=warn,quinn_proto=warn,rustls=warn";

/// The log filter: `--log-level` (with the libraries kept quiet), else RUST_LOG (or the older
/// SPINDEL_LOG) as given, else `default` (info for `run`, warn for one-shot commands).
pub(crate) fn log_filter(level: Option<&str>, default: &str) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    if let Some(level) = level {
        return EnvFilter::new(format!("{level},{QUIET_LIBRARIES}"));
    }
    for var in ["RUST_LOG", "SPINDEL_LOG"] {
        if let Ok(f) = EnvFilter::try_from_env(var) {
            return f;
        }
    }
    EnvFilter::new(format!("{default},{QUIET_LIBRARIES}"))
}

pub(crate) fn init_tracing(command: &Command, file: Option<&Settings>) {
    use std::io::IsTerminal;
    let (level, format, default) = match command {
        Command::Run { log, .. } => (
            log.log_level
                .as_deref()
                .or(file.and_then(|f| f.log_level.as_deref())),
            log.log_format
                .or(file.and_then(|f| f.log_format))
                .unwrap_or(LogFormat::Text),
            "info",
        ),
        _ => (None, LogFormat::Text, "warn"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(level, default))
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().with_current_span(false).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
