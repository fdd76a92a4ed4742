//! The `ugem` binary: `serve`, `check-config`, and the admin verbs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ugem::cli::{self, Verb};
use ugem::config::{Config, ConfigProblem, ConfigSource, EMBEDDED_DEFAULT, show};

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
    /// Validate the configuration and print every problem (nothing is
    /// created: not even the data folder).
    CheckConfig,
    /// Write man pages or shell completions generated from this command
    /// line's own definition (for packagers; see packaging/debian).
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
    /// The configuration in effect.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// The shared PostgreSQL store (`[store] url`), run on this machine.
    #[command(subcommand)]
    Store(StoreCmd),
    #[command(flatten)]
    Verb(Verb),
}

/// What `ugem generate` writes.
#[derive(Subcommand, Debug)]
enum Generate {
    /// One man page per command and subcommand (ugem.1, ugem-domain.1, ...).
    Man {
        /// Folder to write the pages into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// A completion script for one shell, on standard output.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Writes what `ugem generate` was asked for.
fn generate(what: Generate) -> std::io::Result<()> {
    use clap::CommandFactory;
    let mut cmd = Args::command();
    match what {
        Generate::Man { out } => {
            std::fs::create_dir_all(&out)?;
            clap_mangen::generate_to(cmd, &out)
        }
        Generate::Completions { shell } => {
            // Into a buffer first: clap_complete panics on a write error
            // (a closed pipe), and a packager's script deserves an error.
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "ugem", &mut buf);
            std::io::Write::write_all(&mut std::io::stdout(), &buf)
        }
    }
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Print the effective configuration (embedded default or file, then
    /// UGEM_* environment) as TOML lines; secrets are redacted.
    Show {
        /// Only keys whose values differ from the defaults (like `postconf -n`).
        #[arg(long)]
        changed: bool,
    },
}

#[derive(Subcommand, Debug)]
enum StoreCmd {
    /// Apply the schema migrations the database lacks and print them
    /// (`ugem serve` applies them at start too).
    Migrate,
    /// Write the whole registry (domains, versions, suspensions,
    /// applications, change requests, sightings, audit) to FILE as JSON,
    /// from `[store] url` or, without it, from this node's redb file (stop
    /// the node first: the file is its alone while it runs).
    Export {
        /// Where to write the document.
        file: PathBuf,
    },
    /// Load an export into the empty PostgreSQL store of `[store] url`,
    /// keeping every id; all or nothing, verified by counting afterwards.
    Import {
        /// The document `ugem store export` wrote.
        file: PathBuf,
    },
}

/// Runs `ugem store ...` against the database of `[store] url`.
fn store(src: &ConfigSource, cmd: StoreCmd, json: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    let cfg = Config::examine(src).map_err(|e| anyhow::anyhow!("{e}"))?;
    let url = cfg.store.url.clone();
    let need_url = || {
        url.clone().ok_or_else(|| {
            anyhow::anyhow!("store.url is not set: the registry is in the embedded store")
        })
    };
    let print_counts = |doc: &ugem::store::export::RegistryExport| {
        let counts = doc.counts();
        if json {
            println!("{}", serde_json::json!({ "counts": counts }));
        } else {
            for (kind, n) in counts {
                println!("{kind:<20} {n}");
            }
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cmd {
            StoreCmd::Export { file } => {
                let doc = match &url {
                    Some(url) => {
                        let pg = ugem::server::open_shared(url, &cfg.store).await?;
                        ugem::store::export::export(&pg).await?
                    }
                    None => {
                        let (_, redb) = ugem::store::open(&cfg.server.data_dir)
                            .context("cannot open this node's store")?;
                        ugem::store::export::export(&redb).await?
                    }
                };
                let text = serde_json::to_vec_pretty(&doc)?;
                std::fs::write(&file, text)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                print_counts(&doc);
                Ok(())
            }
            StoreCmd::Import { file } => {
                let url = need_url()?;
                let text = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let doc: ugem::store::export::RegistryExport = serde_json::from_slice(&text)
                    .with_context(|| format!("{} is not a registry export", file.display()))?;
                let pg = ugem::server::open_shared(&url, &cfg.store).await?;
                pg.import(&doc).await?;
                let back = ugem::store::export::export(&pg).await?;
                anyhow::ensure!(
                    back.counts() == doc.counts(),
                    "imported, but the store counts {:?} where the file has {:?}",
                    back.counts(),
                    doc.counts()
                );
                print_counts(&back);
                if !json {
                    println!(
                        "imported and verified: every count matches {}",
                        file.display()
                    );
                }
                Ok(())
            }
            StoreCmd::Migrate => {
                let url = need_url()?;
                let pg = ugem::server::open_shared(&url, &cfg.store).await?;
                let version = pg.schema_version().await?;
                if json {
                    println!("{}", serde_json::json!({ "schema_version": version }));
                } else {
                    println!(
                        "schema version {version} (this build writes {})",
                        ugem::store::registry::postgres::schema::current()
                    );
                }
                Ok(())
            }
        }
    })
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
        Command::Generate { what } => match generate(what) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ugem: generate: {e}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig => check_config(&src, args.json),
        Command::Store(cmd) => match store(&src, cmd, args.json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ugem: store: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Config(ConfigCmd::Show { changed }) => match Config::examine(&src) {
            Ok(cfg) => {
                let tree = if changed {
                    show::changed(&cfg, &Config::defaults_for(&src))
                } else {
                    show::effective(&cfg)
                };
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&tree).expect("JSON"));
                } else {
                    print!("{}", show::toml_lines(&tree));
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
            match ugem::server::run_blocking(cfg, src) {
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

/// `check-config`: every problem, placed in the file or the environment;
/// exit 2 when there is one. Nothing is created.
fn check_config(src: &ConfigSource, json: bool) -> ExitCode {
    let (cfg, errors) = match Config::examine(src) {
        Ok(cfg) => (Some(cfg), Vec::new()),
        Err(e) => (None, e.problems),
    };
    let mut warnings: Vec<ConfigProblem> = Vec::new();
    if let Some(cfg) = &cfg {
        for k in &cfg.governor.retired {
            warnings.push(ConfigProblem::new(
                format!("governor.{k}"),
                "no longer used (see the README's governor section) and is ignored",
            ));
        }
        warnings.extend(cfg.warnings());
    }
    let code = if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    };
    if json {
        let problems: Vec<serde_json::Value> = errors
            .iter()
            .map(|p| p.to_json("error"))
            .chain(warnings.iter().map(|p| p.to_json("warning")))
            .collect();
        let report = serde_json::json!({ "ok": errors.is_empty(), "problems": problems });
        println!("{}", serde_json::to_string_pretty(&report).expect("JSON"));
        return code;
    }
    let Some(cfg) = cfg else {
        eprintln!(
            "{}",
            ugem::config::ConfigError {
                source_name: src.name(),
                problems: errors,
            }
        );
        return code;
    };
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
    code
}
