//! The `wsgate` command: `serve` runs a gateway, `check` validates a config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use wsgate::dev_tables::LocalTables;
use wsgate::function::sdks;
use wsgate::tls::DevTls;
use wsgate::{Config, DEFAULT_CONFIG, Gateway, Options};
use wsgate_core::import::{self, TableSpec};

/// Environment variable for the log filter (tracing's `EnvFilter` syntax).
const ENV_LOG: &str = "WSGATE_LOG";
/// Environment variable for the log format (`--log-format`).
const ENV_LOG_FORMAT: &str = "WSGATE_LOG_FORMAT";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// For people: one line per event, colored on a terminal.
    Text,
    /// For log pipelines: one JSON object per line, the event's fields at the top level.
    Json,
}

#[derive(Parser)]
#[command(
    name = "wsgate",
    version,
    about = "A WebSocket API gateway with the Amazon API Gateway contract"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text or as one JSON object per line (levels: WSGATE_LOG, e.g. "debug" or
    /// "info,wsgate::edge=debug").
    #[arg(long, global = true, env = ENV_LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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
        /// Write the pid of the process that serves here (rewritten by the new process after
        /// an upgrade with `kill -USR2`; removed at exit).
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// Run a project for local development: its real handlers in local processes, restarted
    /// when their code changes, and routes reloaded when the config or template changes.
    Dev {
        /// A wsgate TOML config.
        #[arg(long, short, conflicts_with_all = ["sam", "serverless"])]
        config: Option<PathBuf>,
        /// An AWS SAM / CloudFormation template (AWS::ApiGatewayV2::* and AWS::Serverless::Function).
        #[arg(long, conflicts_with = "serverless")]
        sam: Option<PathBuf>,
        /// A Serverless Framework serverless.yml (functions.*.events[].websocket).
        #[arg(long)]
        serverless: Option<PathBuf>,
        /// Overrides gateway.listen.
        #[arg(long)]
        listen: Option<String>,
        /// Overrides the stage.
        #[arg(long)]
        stage: Option<String>,
        /// Install the AWS SDKs Lambda's runtimes provide (AWS SDK v3 packages the Node.js code
        /// imports, boto3 for Python) once into wsgate's cache, and let the handlers import them.
        #[arg(long)]
        provide_sdks: bool,
        /// A local DynamoDB (DynamoDB Local, moto, LocalStack): the project's tables missing
        /// there are created at startup and on reload, and handlers get it as their endpoint.
        #[arg(long, value_name = "URL", env = wsgate::dev_tables::ENV_ENDPOINT)]
        dynamodb: Option<String>,
    },
    /// Validate a config file and exit: 0 when valid, 1 naming the bad key otherwise.
    Check {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    let mut config = match path {
        // A file that cannot be read is named by its error already; one that can is invalid.
        Some(path) => Config::load(path).map_err(|error| {
            let unread = error.key == path.display().to_string();
            let error = anyhow::Error::new(error);
            if unread {
                error
            } else {
                error.context(format!("{} is invalid", path.display()))
            }
        })?,
        None => {
            Config::from_toml(DEFAULT_CONFIG).context("the embedded default config is invalid")?
        }
    };
    config.apply_env(|key| std::env::var(key).ok());
    Ok(config)
}

/// Where `wsgate dev` reads the project from.
#[derive(Debug, Clone)]
enum Source {
    Toml(PathBuf),
    Sam(PathBuf),
    Serverless(PathBuf),
}

impl Source {
    fn path(&self) -> &Path {
        match self {
            Self::Toml(p) | Self::Sam(p) | Self::Serverless(p) => p,
        }
    }

    /// The config, what of the file could not be mapped, the region it names, and its
    /// DynamoDB tables.
    fn load(&self) -> anyhow::Result<Loaded> {
        let path = self.path();
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let read = || {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let env = |key: &str| std::env::var(key).ok();
        let options = import::ImportOptions {
            env: Some(&env),
            ..import::ImportOptions::default()
        };
        let imported = match self {
            Self::Toml(_) => {
                return Ok(Loaded {
                    config: load(Some(path))?,
                    warnings: Vec::new(),
                    region: None,
                    tables: Vec::new(),
                });
            }
            Self::Sam(_) => import::from_sam_with(&read()?, &base, options),
            Self::Serverless(_) => import::from_serverless_with(&read()?, &base, options),
        };
        let imported = imported.with_context(|| format!("cannot import {}", path.display()))?;
        Ok(Loaded {
            config: imported.config,
            warnings: imported.warnings,
            region: imported.region,
            tables: imported.tables,
        })
    }
}

/// What [`Source::load`] read.
struct Loaded {
    config: Config,
    /// What of the file could not be mapped.
    warnings: Vec<String>,
    /// The region the file names.
    region: Option<String>,
    tables: Vec<TableSpec>,
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// An error and its causes, each once: many errors name their cause in their own message already
/// (`cannot listen on 127.0.0.1:80: Address already in use`), and anyhow's `{:#}` would repeat it.
fn described(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env(ENV_LOG).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => {
            use std::io::IsTerminal;
            logs.with_ansi(std::io::stderr().is_terminal()).init();
        }
        LogFormat::Json => logs.json().flatten_event(true).with_span_list(false).init(),
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wsgate: {}", described(&error));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check { config } => {
            let loaded = load(Some(&config))?;
            // Everything `serve` builds, so that `check` passing means `serve` will start.
            Gateway::check(loaded.clone())
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
        Command::Dev {
            config,
            sam,
            serverless,
            listen,
            stage,
            dynamodb,
            provide_sdks,
        } => {
            let source = match (config, sam, serverless) {
                (_, Some(sam), _) => Source::Sam(sam),
                (_, _, Some(serverless)) => Source::Serverless(serverless),
                (Some(config), _, _) => Source::Toml(config),
                (None, None, None) => {
                    anyhow::bail!("wsgate dev needs --config, --sam or --serverless")
                }
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(dev(source, listen, stage, dynamodb, provide_sdks))
        }
        Command::Serve {
            config,
            listen,
            stage,
            pid_file,
        } => {
            // What `kill -USR2` starts again: this binary's path as it was given, and the same
            // arguments.
            let relaunch = Relaunch {
                program: wsgate::relaunch::program_path(),
                args: std::env::args_os().skip(1).collect(),
                pid_file,
            };
            let read = move || {
                let mut loaded = load(config.as_deref())?;
                if let Some(listen) = &listen {
                    loaded.gateway.listen.clone_from(listen);
                }
                if let Some(stage) = &stage {
                    loaded.gateway.stage.clone_from(stage);
                }
                Ok(loaded)
            };
            let loaded = read()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve(loaded, read, relaunch))
        }
    }
}

/// How `kill -USR2` starts the next process, and where the pid of the serving one is written.
struct Relaunch {
    program: Option<PathBuf>,
    args: Vec<std::ffi::OsString>,
    pid_file: Option<PathBuf>,
}

/// Runs until SIGTERM/SIGINT; on SIGHUP reads the config again (routes, authorizers, limits,
/// the TLS certificate) and keeps every connection; on SIGUSR2 starts the binary again and
/// hands it every connection.
async fn serve(
    config: Config,
    read: impl Fn() -> anyhow::Result<Config>,
    relaunch: Relaunch,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let stage = config.gateway.stage.clone();
    let tls = config.gateway.tls.is_some();
    // Listened for before the listening line is printed: a SIGHUP or SIGTERM sent right after it
    // must not meet the default action (the process ends at once, code -15 and no `$disconnect`).
    let mut stop = StopSignals::new()?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut upgrade = signal(SignalKind::user_defined2())?;
    let gateway = match std::env::var_os(wsgate::relaunch::ENV_HANDOFF) {
        Some(handoff) => {
            Gateway::take_over(config, Options::default(), Path::new(&handoff)).await?
        }
        None => Gateway::start(config).await?,
    };
    let addr = gateway.local_addr();
    let management = gateway.management_addr().unwrap_or(addr);
    // One line on stdout, for people and for scripts that start wsgate on port 0.
    println!(
        "wsgate listening on ws://{addr}/{stage} (management: http://{management}/{stage}/@connections/{{id}})"
    );
    if tls {
        println!(
            "wsgate TLS on the same ports: wss://{addr}/{stage} (management: https://{management}/{stage}/@connections/{{id}})"
        );
    }
    if let Some(path) = &relaunch.pid_file {
        write_pid_file(path)?;
    }
    systemd_notify(&format!("READY=1\nMAINPID={}", std::process::id()));
    loop {
        tokio::select! {
            () = stop.recv() => break,
            _ = upgrade.recv() => {
                let Some(program) = &relaunch.program else {
                    tracing::error!("USR2: not upgraded: the path of this binary is unknown");
                    continue;
                };
                match gateway.upgrade(program, &relaunch.args).await {
                    Ok(given) => {
                        gateway.retire(given).await;
                        tracing::info!("USR2: handed over; this process exits");
                        return Ok(());
                    }
                    Err(error) => tracing::error!("USR2: not upgraded, this process serves on: {error}"),
                }
            }
            _ = hangup.recv() => {
                let reload = |config: Config| {
                    for change in gateway.needs_restart(&config) {
                        tracing::warn!("SIGHUP: {change} takes a restart; still listening as before");
                    }
                    Ok(gateway.reload(config)?)
                };
                match read().and_then(reload) {
                    Ok(()) => tracing::info!(open = gateway.hub().len(), "SIGHUP: reloaded; connections kept"),
                    Err(error) => tracing::error!("SIGHUP: not reloaded, the previous config stays: {}", described(&error)),
                }
            }
        }
    }
    systemd_notify("STOPPING=1");
    gateway.shutdown().await;
    if let Some(path) = &relaunch.pid_file {
        remove_pid_file(path);
    }
    Ok(())
}

/// Writes this process's pid to `path` (through a temporary file and a rename, so that a reader
/// never sees half of it).
fn write_pid_file(path: &Path) -> anyhow::Result<()> {
    let pid = std::process::id();
    let temporary = path.with_extension(format!("{pid}.tmp"));
    std::fs::write(&temporary, format!("{pid}\n"))
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("cannot write the pid file {}", path.display()))
}

/// Removes the pid file at exit, if it still names this process.
fn remove_pid_file(path: &Path) {
    let ours = std::fs::read_to_string(path)
        .is_ok_and(|text| text.trim() == std::process::id().to_string());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

/// Tells systemd (`Type=notify`) how the service is, when it runs under it (`NOTIFY_SOCKET`).
fn systemd_notify(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let target = target.to_string_lossy().into_owned();
    let address = match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&target),
    };
    let sent = UnixDatagram::unbound()
        .and_then(|socket| address.and_then(|a| socket.send_to_addr(state.as_bytes(), &a)));
    if let Err(error) = sent {
        tracing::warn!(%error, socket = target, "cannot notify systemd");
    }
}

async fn dev(
    source: Source,
    listen: Option<String>,
    stage: Option<String>,
    dynamodb: Option<String>,
    provide_sdks: bool,
) -> anyhow::Result<()> {
    let overrides = |config: &mut Config| {
        if let Some(listen) = &listen {
            config.gateway.listen.clone_from(listen);
        }
        if let Some(stage) = &stage {
            config.gateway.stage.clone_from(stage);
        }
    };
    let Loaded {
        mut config,
        warnings,
        region,
        tables,
    } = source.load()?;
    for warning in &warnings {
        eprintln!("wsgate: warning: {}: {warning}", source.path().display());
    }
    overrides(&mut config);
    let listen_on = config.gateway.listen.clone();
    let stage_name = config.gateway.stage.clone();
    let functions = config.functions.len();
    let routes = config.routes.len();
    // TLS on the same port, with a CA made now and trusted by the handlers, so a handler that
    // posts to https://{domainName}/{stage} reaches this gateway unchanged.
    // Its folder is private and new (never one planted under a guessable name), removed at exit.
    let host = listen_on
        .rsplit_once(':')
        .map(|(host, _)| host.trim_matches(['[', ']']).to_owned());
    let (tls, tls_dir) = DevTls::in_private_dir(&host.into_iter().collect::<Vec<_>>())?;
    let ca = tls.ca_file.display().to_string();
    let cache = if provide_sdks {
        Some(sdks::cache_dir().context(
            "--provide-sdks: no cache folder: set WSGATE_CACHE_DIR, XDG_CACHE_HOME or HOME",
        )?)
    } else {
        None
    };
    let function_env = match &cache {
        Some(cache) => provide(&config, cache).await,
        None => Vec::new(),
    };
    let mut options = Options {
        function_env,
        watch_code: true,
        tls: Some(tls),
        region,
        development: true,
    };
    let mut local_tables = dev_tables(
        dynamodb.as_deref(),
        &options.functions_region(&config),
        &tables,
    )
    .await?;
    if let Some(local) = &local_tables {
        options.function_env.extend(local.handler_env());
    }
    let mut stop = StopSignals::new()?;
    // `kill -USR2` upgrades `wsgate serve`; here it must not end the process (its default).
    let mut upgrade =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2())?;
    let gateway = Gateway::start_with(config, options).await?;
    let addr = gateway.local_addr();
    println!(
        "wsgate listening on ws://{addr}/{stage_name} and wss://{addr}/{stage_name} (management: http(s)://{addr}/{stage_name}/@connections/{{id}}; {routes} routes, {functions} functions from {}; development CA: {ca})",
        source.path().display()
    );
    let mut last = modified(source.path());
    loop {
        tokio::select! {
            () = stop.recv() => break,
            _ = upgrade.recv() => {
                tracing::warn!("USR2: wsgate dev does not upgrade in place (it reloads handlers and routes on its own); use wsgate serve");
                continue;
            }
            () = tokio::time::sleep(std::time::Duration::from_millis(300)) => {}
        }
        let now = modified(source.path());
        if now == last {
            continue;
        }
        last = now;
        match source.load() {
            Ok(Loaded {
                mut config,
                warnings,
                tables,
                ..
            }) => {
                overrides(&mut config);
                if let Some(local) = &mut local_tables {
                    local.ensure(&tables).await;
                }
                // The listener stays where it is; connections stay open.
                config.gateway.listen.clone_from(&listen_on);
                for warning in &warnings {
                    eprintln!("wsgate: warning: {}: {warning}", source.path().display());
                }
                if let Some(cache) = &cache {
                    provide(&config, cache).await;
                }
                match gateway.reload(config) {
                    Ok(()) => {
                        tracing::info!(file = %source.path().display(), open = gateway.hub().len(), "reloaded; connections kept")
                    }
                    Err(error) => tracing::error!(%error, "not reloaded; the previous routes stay"),
                }
            }
            Err(error) => tracing::error!(
                error = described(&error),
                "not reloaded; the previous routes stay"
            ),
        }
    }
    gateway.shutdown().await;
    drop(tls_dir);
    Ok(())
}

/// `--provide-sdks`: installs what the functions need (npm and pip run in a blocking thread)
/// and returns the handlers' environment.
async fn provide(config: &Config, cache: &Path) -> Vec<(String, String)> {
    let (config, cache) = (config.clone(), cache.to_path_buf());
    tokio::task::spawn_blocking(move || sdks::provide(&config, &cache))
        .await
        .unwrap_or_default()
}

/// `wsgate dev --dynamodb URL` (else `AWS_ENDPOINT_URL_DYNAMODB`): the project's tables missing
/// there are created before serving; without an endpoint, the tables are only named.
async fn dev_tables(
    endpoint: Option<&str>,
    region: &str,
    tables: &[TableSpec],
) -> anyhow::Result<Option<LocalTables>> {
    let Some(endpoint) = endpoint.filter(|e| !e.is_empty()) else {
        if !tables.is_empty() {
            let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
            tracing::info!(
                tables = names.join(", "),
                "the project declares DynamoDB tables; with --dynamodb URL (or AWS_ENDPOINT_URL_DYNAMODB) wsgate dev creates those missing there"
            );
        }
        return Ok(None);
    };
    let mut local = LocalTables::new(endpoint, region, |key| std::env::var(key).ok())?;
    local.ensure(tables).await;
    Ok(Some(local))
}

/// SIGTERM and SIGINT (Ctrl-C), listened for from the moment this is made: one that arrives
/// before the first `recv` is kept for it.
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for either signal.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_the_message_names_already_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let named = anyhow::Error::new(io).context("cannot listen: Address already in use");
        assert_eq!(described(&named), "cannot listen: Address already in use");
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file (os error 2)");
        let unnamed = anyhow::Error::new(io).context("cannot read wsgate.toml");
        assert_eq!(
            described(&unnamed),
            "cannot read wsgate.toml: No such file (os error 2)"
        );
    }
}
