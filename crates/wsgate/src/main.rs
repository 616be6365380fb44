//! The `wsgate` command: `serve` runs a gateway, `check` validates a config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use wsgate::{Config, DEFAULT_CONFIG, Gateway};

/// Environment variable for the log filter (tracing's `EnvFilter` syntax).
const ENV_LOG: &str = "WSGATE_LOG";

#[derive(Parser)]
#[command(
    name = "wsgate",
    version,
    about = "A WebSocket API gateway with the Amazon API Gateway contract"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (on the embedded echo config when no --config is given).
    Serve {
        /// The TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Overrides gateway.listen (also WSGATE_LISTEN).
        #[arg(long)]
        listen: Option<String>,
        /// Overrides gateway.stage (also WSGATE_STAGE).
        #[arg(long)]
        stage: Option<String>,
    },
    /// Validate a config file and exit: 0 when valid, 1 naming the bad key otherwise.
    Check {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    let text = match path {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => DEFAULT_CONFIG.to_owned(),
    };
    let origin = path.map_or_else(
        || "embedded default config".to_owned(),
        |p| p.display().to_string(),
    );
    let mut config = Config::from_toml(&text).with_context(|| format!("{origin} is invalid"))?;
    config.apply_env(|key| std::env::var(key).ok());
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env(ENV_LOG).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wsgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check { config } => {
            let loaded = load(Some(&config))?;
            loaded
                .validate()
                .with_context(|| format!("{} is invalid", config.display()))?;
            println!(
                "{}: ok ({} routes, stage {}, listen {})",
                config.display(),
                loaded.routes.len(),
                loaded.gateway.stage,
                loaded.gateway.listen
            );
            Ok(())
        }
        Command::Serve {
            config,
            listen,
            stage,
        } => {
            let mut loaded = load(config.as_deref())?;
            if let Some(listen) = listen {
                loaded.gateway.listen = listen;
            }
            if let Some(stage) = stage {
                loaded.gateway.stage = stage;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve(loaded))
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let stage = config.gateway.stage.clone();
    let gateway = Gateway::start(config).await?;
    let addr = gateway.local_addr();
    // One line on stdout, for people and for scripts that start wsgate on port 0.
    println!(
        "wsgate listening on ws://{addr}/{stage} (management: http://{addr}/{stage}/@connections/{{id}})"
    );
    shutdown_signal().await;
    gateway.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
