//! `wsgate-bench`: a load generator for servers that speak the API Gateway WebSocket contract
//! (wsgate, serverless-offline, the raw baseline). Every scenario is bounded in count and time and
//! prints one JSON line; `report` turns a results folder into BENCHMARKS.md and charts.

mod client;
mod kernelmem;
mod procstat;
mod redisstat;
mod report;
mod scenario;
mod stats;
mod stub;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "wsgate-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open N connections and hold them: RSS and kernel socket memory per connection, connect
    /// rate and times.
    Idle {
        #[command(flatten)]
        common: scenario::Common,
        #[command(flatten)]
        args: scenario::idle::Args,
    },
    /// Open and close K connections: connects per second, CPU per connect + close.
    Connect {
        #[command(flatten)]
        common: scenario::Common,
        #[command(flatten)]
        args: scenario::connect::Args,
    },
    /// C connections x M messages to a route with a route response.
    Echo {
        #[command(flatten)]
        common: scenario::Common,
        #[command(flatten)]
        args: scenario::echo::Args,
    },
    /// K @connections POSTs with a given concurrency.
    Post {
        #[command(flatten)]
        common: scenario::Common,
        #[command(flatten)]
        args: scenario::post::Args,
    },
    /// N resumable connections dropped, then resumed at once: memory per suspended session,
    /// time and CPU per resume.
    Resume {
        #[command(flatten)]
        common: scenario::Common,
        #[command(flatten)]
        args: scenario::resume::Args,
    },
    /// A binary upgrade (SIGUSR2) while N connections get numbered POSTs: how long it took,
    /// and that no connection closed and no message was lost. Exits non-zero when one did.
    Upgrade {
        #[command(flatten)]
        common: scenario::Common,
        #[command(flatten)]
        args: scenario::upgrade::Args,
    },
    /// N receivers, one sender: time until all got the message.
    Broadcast {
        #[command(flatten)]
        common: scenario::Common,
        #[command(flatten)]
        args: scenario::broadcast::Args,
    },
    /// A fast HTTP backend for the http integration (answers with the event's body).
    Stub {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Turn a results folder (results.jsonl) into BENCHMARKS.md and PNG charts.
    Report(report::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let line = runtime.block_on(async {
        match cli.command {
            Command::Idle { common, args } => scenario::idle::run(&common, &args).await.map(Some),
            Command::Connect { common, args } => {
                scenario::connect::run(&common, &args).await.map(Some)
            }
            Command::Echo { common, args } => scenario::echo::run(&common, &args).await.map(Some),
            Command::Post { common, args } => scenario::post::run(&common, &args).await.map(Some),
            Command::Resume { common, args } => {
                scenario::resume::run(&common, &args).await.map(Some)
            }
            Command::Upgrade { common, args } => {
                scenario::upgrade::run(&common, &args).await.map(Some)
            }
            Command::Broadcast { common, args } => {
                scenario::broadcast::run(&common, &args).await.map(Some)
            }
            Command::Stub { listen } => stub::serve(&listen).await.map(|()| None),
            Command::Report(args) => report::run(&args).map(|()| None),
        }
    })?;
    if let Some(line) = line {
        println!("{line}");
        // A scenario that checks as well as measures (upgrade) says whether it found a fault:
        // the line is printed either way, and the exit status tells scripts.
        if line["passed"] == false {
            let faults = line["problems"].as_array().map_or(0, Vec::len);
            anyhow::bail!("the run found {faults} faults (its line's \"problems\")");
        }
    }
    Ok(())
}
