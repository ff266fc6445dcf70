//! The `gridlet` command.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

// The host allocates per request and per delivery (bodies, events, WIT
// values); glibc's malloc spent ~15 % of the durable path on fragmentation
// upkeep (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// gridlet: run sandboxed WebAssembly plugins on Azure Machine Learning
/// events delivered by Azure Event Grid.
#[derive(Parser)]
#[command(name = "gridlet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive Event Grid deliveries and hand each event to the plugins.
    Serve(Box<cli::serve::ServeArgs>),
    /// Act like Event Grid toward a webhook: handshake, then deliver events.
    Send(cli::send::SendArgs),
    /// List, show, replay or purge dead letters (through the admin API).
    DeadLetters(cli::dead_letters::DeadLetterArgs),
    /// List the plugins with their state, version and counters (through the
    /// admin API).
    Plugins(cli::plugins::PluginsArgs),
    /// Run a plugin on the events in a file and show what it did.
    Run(cli::run::RunArgs),
    /// A local HTTP endpoint that prints every request it receives: a
    /// stand-in for a chat webhook or a pipeline while you test plugins.
    Sink(cli::sink::SinkArgs),
    /// Compile one plugin (stdin) into a compile cache file: what `gridlet
    /// serve` runs as a child, so compiling never bloats the serving process.
    #[command(hide = true)]
    CompilePlugin(cli::compile::CompileArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cli::serve::serve(*args).await,
            Command::Send(args) => cli::send::send(args).await,
            Command::DeadLetters(args) => cli::dead_letters::dead_letters(args).await,
            Command::Plugins(args) => cli::plugins::plugins(args).await,
            Command::Run(args) => cli::run::run(args).await,
            Command::Sink(args) => cli::sink::sink(args).await,
            Command::CompilePlugin(args) => cli::compile::compile(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
