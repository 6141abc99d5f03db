//! `freellmapi`: the gateway binary.

use clap::Parser;
use freellmapi::cli::{Action, Cli, LogFormat, LogLevel};

fn main() -> std::process::ExitCode {
    let action = Cli::parse().action();
    match &action {
        Action::Serve(args) => {
            if let Err(e) =
                freellmapi::logging::init(args.log_level, args.log_format, args.log_files())
            {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        // A tool reports on standard error; only warnings go to the log.
        Action::FindProxies(_) | Action::MigrateFromOld(_) => {
            let _ = freellmapi::logging::init(LogLevel::Warn, LogFormat::Text, None);
        }
        // Blocking and quick: no logging, no runtime.
        Action::Healthcheck(args) => {
            return match freellmapi::healthcheck::run(args) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("unhealthy: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
    }
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
    let result = runtime.block_on(async move {
        match action {
            Action::Serve(args) => freellmapi::startup::serve(*args).await,
            Action::FindProxies(args) => freellmapi::proxies_find::run(&args).await.map(|_| ()),
            Action::MigrateFromOld(args) => {
                freellmapi::migrate_old::run(&args).await.map(|report| {
                    print!("{report}");
                })
            }
            Action::Healthcheck(_) => Ok(()),
        }
    });
    let code = match result {
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
