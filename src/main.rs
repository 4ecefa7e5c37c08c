//! The `baton` command: `run` the service, `chat` in a terminal, `check`
//! the config, `migrate` the database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use baton::config::Config;
use clap::{Parser, Subcommand};

/// Baton: an LLM chat bot for Discord and Telegram, one orchestrator per
/// conversation with parallel workers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The config file; env variables BATON__SECTION__KEY override it.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Commands>,
}

const DEFAULT_CONFIG: &str = "config/baton.toml";

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run the service (the default).
    Run,
    /// Talk to the engine in this terminal: one conversation, the same commands.
    Chat {
        /// Which terminal conversation (each has its own settings and history).
        #[arg(long, default_value = "local")]
        conversation: String,
    },
    /// Validate the config and say plainly what is missing.
    Check,
    /// Create the database and apply its migrations, then exit.
    Migrate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let chatting = matches!(cli.command, Some(Commands::Chat { .. }));
    // The config says how to log ([log]), so it is read first.
    let config = match load_config(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            return ExitCode::FAILURE;
        }
    };
    baton::logging::init(&config.log, chatting);
    if !cli.config.exists() {
        tracing::warn!("no {DEFAULT_CONFIG}; using the built-in defaults");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once: many errors
/// already include their cause's text in their own, so a cause whose text
/// is already there is left out (`{:#}` would repeat it).
fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Commands::Run) {
        Commands::Run => {
            baton::app::run(config, shutdown_signal()).await?;
        }
        Commands::Chat { conversation } => {
            // Said before the first message, not after failed attempts.
            if let Some(missing) = baton::newcomer::missing_api_key(&config) {
                eprintln!("warning: {missing}");
            }
            let services = baton::app::services(config).await?;
            let stdin = tokio::io::BufReader::new(tokio::io::stdin());
            baton::chat::chat(services.clone(), &conversation, stdin, tokio::io::stdout()).await?;
            services.mcp.shutdown().await;
            services.store.close().await;
        }
        Commands::Check => {
            let report = baton::check::check(&config).await;
            print!("{}", report.render());
            if !report.passed() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Commands::Migrate => {
            let store = baton::store::Store::connect(&config.storage.url)
                .await
                .context("cannot open the database")?;
            store.close().await;
            println!("database ready: migrations applied");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads the config; a missing file at the default path means defaults.
fn load_config(path: &Path) -> anyhow::Result<Config> {
    if !path.exists() && path == Path::new(DEFAULT_CONFIG) {
        return Ok(Config::from_toml("", std::env::vars())?);
    }
    Config::load(path).with_context(|| format!("loading {}", path.display()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    () = ctrl_c => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("database error: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let inner = std::io::Error::other("unable to open database file");
        let error = anyhow::Error::new(Outer(inner)).context("cannot open the database");
        assert_eq!(
            format!("{error:#}").matches("unable to open").count(),
            2,
            "the chain repeats itself"
        );
        assert_eq!(
            error_text(&error),
            "cannot open the database: database error: unable to open database file"
        );
        let plain = anyhow::anyhow!("one").context("two");
        assert_eq!(error_text(&plain), "two: one");
    }
}
