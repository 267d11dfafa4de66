//! The `faregate` binary: CLI, config loading and wiring.

mod demo;
mod example;
mod llm_double;
mod ops;
mod run;
mod x402;

/// mimalloc: a proxied request makes a handful of small allocations
/// (header map, request id, path), and glibc's malloc spent about a
/// thousand instructions a request on them (docs/BENCHMARKS.md §2).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// faregate: a payment gateway in front of any HTTP API.
#[derive(Debug, Parser)]
#[command(name = "faregate", version, about)]
struct Cli {
    /// Log format for operational logs on stderr (the access log is JSON on stdout).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Data-plane worker threads (default: one per CPU), each with a single-threaded scheduler
    /// of its own; the admin API, the ledger writer and reloads run on the main thread.
    #[arg(long, global = true, env = "FAREGATE_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a self-contained demo: an embedded upstream, paid and free routes, a demo key.
    Demo {
        /// Port of the gateway listener on 127.0.0.1.
        #[arg(long, default_value_t = 8402)]
        port: u16,
        /// Port of the admin listener on 127.0.0.1.
        #[arg(long, default_value_t = 8403)]
        admin_port: u16,
    },
    /// Run the gateway with a config file.
    Serve {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Write a commented example config.
    Init {
        /// Where to write it.
        #[arg(default_value = "faregate.toml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Check a config file and list every problem in it.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Create and list accounts.
    Accounts {
        #[command(flatten)]
        store: ops::StoreArgs,
        #[command(subcommand)]
        command: ops::AccountsCommand,
    },
    /// Issue, list and revoke API keys.
    Keys {
        #[command(flatten)]
        store: ops::StoreArgs,
        #[command(subcommand)]
        command: ops::KeysCommand,
    },
    /// Add prepaid credit.
    Credits {
        #[command(flatten)]
        store: ops::StoreArgs,
        #[command(subcommand)]
        command: ops::CreditsCommand,
    },
    /// Check the ledger.
    Ledger {
        #[command(flatten)]
        store: ops::StoreArgs,
        #[command(subcommand)]
        command: ops::LedgerCommand,
    },
    /// Run the deterministic LLM provider double (OpenAI and Anthropic wire formats).
    #[command(hide = true, name = "llm-double")]
    LlmDouble {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// The key clients must present; none lets everyone in.
        #[arg(long)]
        api_key: Option<String>,
        /// Pause before each streamed token (`250us`, `5ms`, `1s`).
        #[arg(long, default_value = "0ms")]
        token_delay: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    run::init_tracing(&cli.log_format);
    let threads = cli.threads.map(usize::from);
    let workers = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let result = match cli.command {
        Command::Demo { port, admin_port } => {
            run::block_on(Some(1), demo::run(port, admin_port, workers))
        }
        Command::Serve { config } => run::block_on(Some(1), run::serve_file(config, workers)),
        Command::Init { path, force } => example::write(&path, force),
        Command::CheckConfig { file } => run::check_config(&file),
        Command::Accounts { store, command } => {
            run::block_on(Some(1), ops::accounts(store, command))
        }
        Command::Keys { store, command } => run::block_on(Some(1), ops::keys(store, command)),
        Command::Credits { store, command } => run::block_on(Some(1), ops::credits(store, command)),
        Command::Ledger { store, command } => run::block_on(Some(1), ops::ledger(store, command)),
        Command::LlmDouble {
            listen,
            api_key,
            token_delay,
        } => run::block_on(threads, llm_double::run(listen, api_key, &token_delay)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("faregate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
