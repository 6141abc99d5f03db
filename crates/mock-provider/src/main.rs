//! `mock-provider`: standalone mock OpenAI-dialect upstream for benchmarks.
//!
//! Usage: `mock-provider [--listen 127.0.0.1:PORT] [--chunks N] [--threads N] [--record|--no-record]`
//!
//! `GET /__stats` answers the per-scenario counters (hits, `rpm` refusals, scripted errors, cancellations).

use std::io::Write as _;
use std::net::SocketAddr;

use mock_provider::{MockOptions, MockProvider};

const USAGE: &str = "usage: mock-provider [--listen 127.0.0.1:PORT] [--chunks N] [--threads N] [--record|--no-record]";

struct Args {
    listen: SocketAddr,
    chunks: usize,
    threads: usize,
    record: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        chunks: 20,
        threads: 1,
        record: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                args.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--chunks" => {
                let v = value("--chunks")?;
                args.chunks = v.parse().map_err(|e| format!("--chunks {v}: {e}"))?;
            }
            "--threads" => {
                let v = value("--threads")?;
                args.threads = v.parse().map_err(|e| format!("--threads {v}: {e}"))?;
                if args.threads == 0 {
                    return Err("--threads must be at least 1".to_owned());
                }
            }
            "--no-record" => args.record = false,
            "--record" => args.record = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("mock-provider: {err}\n{USAGE}");
            std::process::exit(2);
        }
    };
    // One thread: a current-thread runtime avoids cross-thread wakeups entirely.
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let opts = MockOptions {
            stream_chunks: args.chunks,
            record: args.record,
        };
        let provider = MockProvider::start_on(args.listen, opts).await?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{}", provider.addr())?;
        stdout.flush()?;
        drop(stdout);
        std::future::pending::<()>().await;
        drop(provider);
        Ok(())
    })
}
