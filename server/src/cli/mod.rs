//! The `strata` command line.
#![expect(
    clippy::disallowed_methods,
    reason = "the CLI builds the server's runtime and blocks on it: the runtime owner"
)]
#![expect(clippy::print_stdout, clippy::print_stderr, reason = "the command line's own output and error lines")]

pub mod admin;

use crate::config::{CliOverrides, LogFormat, ServerConfig, default_toml};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Strata: a multi-tenant time-series database for IoT telemetry.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node with every role (ingest, storage, query) in this process.
    Serve(ServeArgs),
    /// Print the default configuration as TOML.
    DefaultConfig,
    /// Manage tenants, limits and tokens through a node's admin API.
    Admin(admin::AdminArgs),
}

/// Arguments of `strata serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). `STRATA_*` variables and flags override it.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// HTTP listen address (default 127.0.0.1:9470).
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// Data directory (default ./strata-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::DefaultConfig => {
            print!("{}", default_toml());
            ExitCode::SUCCESS
        }
        Command::Admin(args) => match admin::run(args) {
            Ok(out) => {
                print!("{out}");
                if !out.ends_with('\n') {
                    println!();
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("strata admin: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(args) => {
            let overrides = CliOverrides { http_addr: args.http_addr, data_dir: args.data_dir };
            let config = match ServerConfig::load(args.config.as_deref(), std::env::vars(), &overrides) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("strata: {e:#}");
                    return ExitCode::from(2);
                }
            };
            init_tracing(&config);
            // Every thread a query may run on (async workers for small queries,
            // blocking threads for the rest) gets the stack the query engine's
            // expression-depth bound is sized against.
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .thread_stack_size(strata_query::engine::prescan::QUERY_THREAD_STACK_BYTES)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("strata: starting the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = runtime.block_on(crate::node::serve(config));
            // Requests still running past `shutdown_timeout` (a long parse on a
            // blocking thread) must not hold the exit: dropping the runtime
            // would wait for every blocking task. Their writes were never
            // acknowledged, and the log and hot store are closed by now.
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "strata failed");
                    eprintln!("strata: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing(config: &ServerConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
