//! `freellmapi`: the gateway binary.

use clap::Parser;
use freellmapi::cli::Cli;

fn main() -> std::process::ExitCode {
    let args = Cli::parse().serve_args();
    freellmapi::logging::init(args.log_level, args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(freellmapi::startup::serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    };
    freellmapi::logging::flush();
    code
}
