//! The `ugem` binary: `serve`, `check-config`, and the admin verbs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ugem::cli::{self, Verb};
use ugem::config::{Config, ConfigSource, EMBEDDED_DEFAULT};

/// ugem: SMTP relay gateway for registered e-government mail domains.
#[derive(Parser, Debug)]
#[command(version, about, propagate_version = true)]
struct Args {
    /// Configuration file (default: the embedded default, data under ./var).
    #[arg(long, global = true, env = "UGEM_CONFIG")]
    config: Option<PathBuf>,
    /// Admin API base URL for the admin verbs (default: from the configuration).
    #[arg(long, global = true)]
    admin: Option<String>,
    /// CA certificate(s), PEM, that vouch for an https admin API (besides
    /// the system's CAs; default: admin.tls_ca_file or admin.tls_cert).
    #[arg(long, global = true, env = "UGEM_ADMIN_CA")]
    ca: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway.
    Serve,
    /// Validate the configuration and print every problem.
    CheckConfig,
    #[command(flatten)]
    Verb(Verb),
}

fn source(config: &Option<PathBuf>) -> ConfigSource {
    match config {
        Some(p) => ConfigSource::File(p.clone()),
        None => ConfigSource::Text {
            text: EMBEDDED_DEFAULT.to_string(),
            base: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        },
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let src = source(&args.config);
    match args.command {
        Command::CheckConfig => match Config::load(&src) {
            Ok(cfg) => {
                for k in &cfg.governor.retired {
                    eprintln!(
                        "warning: governor.{k} is no longer used (see the README's governor section) and is ignored"
                    );
                }
                println!(
                    "configuration OK: smtp {:?}, admin {}, data {}",
                    cfg.smtp
                        .listen
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>(),
                    cfg.admin.listen,
                    cfg.server.data_dir.display()
                );
                for w in cfg.warnings() {
                    println!("warning: {w}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Serve => {
            let cfg = match Config::load(&src) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ugem: refusing to start: {e}");
                    return ExitCode::from(2);
                }
            };
            match ugem::server::run_blocking(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ugem: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Verb(Verb::Governor(cli::GovernorArgs {
            cmd:
                Some(cli::GovernorCmd::Replay {
                    trace,
                    summary_only,
                }),
        })) => match cli::replay(&src, &trace, summary_only) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ugem: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Verb(verb) => {
            let client = match cli::client(&src, args.admin.as_deref(), args.ca.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ugem: {e:#}");
                    return ExitCode::from(2);
                }
            };
            match cli::run(&client, verb, args.json) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ugem: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
