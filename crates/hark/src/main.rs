//! The `hark` command: wires the crates together. No business rules live here.

mod admin;
mod cli;
mod listen;
mod logging;
mod migrate;
mod serve;
mod storage;
mod transcribe;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(threads) = cli.command.engine_threads() {
        // The tensor library sizes its thread pool from this variable on first use; set it
        // before any thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => {
                serve::run(cli.data_dir, &cli.storage, args, serve::Node::Api).await
            }
            Command::Worker(args) => {
                serve::run(cli.data_dir, &cli.storage, args, serve::Node::Worker).await
            }
            Command::Transcribe(args) => {
                logging::init(logging::Format::Text, "warn");
                transcribe::run(&cli.data_dir, args).await
            }
            Command::Listen(args) => {
                logging::init(logging::Format::Text, "warn");
                listen::run(args).await
            }
            Command::Admin(command) => {
                logging::init(logging::Format::Text, "warn");
                admin::run(&cli.data_dir, &cli.storage, command).await
            }
            Command::GraphqlSchema => {
                print!("{}", hark_server::graphql_sdl());
                Ok(())
            }
        }
    });
    // A transcription still running on a blocking thread is abandoned rather than awaited;
    // its job's lease lapses and it is picked up again.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
