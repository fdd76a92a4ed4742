//! A real PostgreSQL server for tests: `initdb` in a temporary folder, run
//! as the unprivileged `postgres` user when the tests run as root (the
//! server refuses root), listening on an ephemeral loopback port with
//! password authentication; stopped when dropped. Debian's `postgresql`
//! package provides it (`.ci/run` installs it); without it the test fails
//! and says so.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The superuser the harness creates, and its password.
pub const USER: &str = "ugem";
/// The superuser's password (also written to [`TestPostgres::password_file`]).
pub const PASSWORD: &str = "test-secret-Zq8";

/// A running PostgreSQL server of the test's own.
pub struct TestPostgres {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    run_as: Option<String>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// The folder of PostgreSQL's server programs: the newest of Debian's
/// `/usr/lib/postgresql/N/bin`, else wherever `initdb` is on the PATH.
fn bindir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return bin;
    }
    let which = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .expect("sh runs");
    let path = String::from_utf8_lossy(&which.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed: \
         apt-get install postgresql (the tests need a real server)"
    );
    Path::new(&path).parent().unwrap().to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl TestPostgres {
    /// Creates and starts a server; panics with the server's log if it
    /// cannot.
    pub fn start() -> TestPostgres {
        TestPostgres::start_with(None)
    }

    /// A server that speaks only TLS on TCP, with this certificate chain
    /// and key (PEM).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> TestPostgres {
        TestPostgres::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> TestPostgres {
        let bindir = bindir();
        let dir = tempfile::Builder::new()
            .prefix("ugem-pg")
            .tempdir()
            .unwrap();
        let run_as = is_root().then(|| "postgres".to_string());
        if let Some(user) = &run_as {
            // The server's user must reach and own its folders.
            let uid = id_of(user, "-u");
            let gid = id_of(user, "-g");
            set_mode(dir.path(), 0o755);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        std::fs::write(dir.path().join("pwfile"), PASSWORD).unwrap();
        set_mode(&dir.path().join("pwfile"), 0o644);
        let mut pg = TestPostgres {
            dir,
            bindir,
            run_as,
            port: 0,
        };
        let data = pg.data();
        let out = pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                USER,
                "--pwfile",
                pg.dir.path().join("pwfile").to_str().unwrap(),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        if let Some((cert, key)) = tls {
            let owner = pg.run_as.as_ref().map(|u| (id_of(u, "-u"), id_of(u, "-g")));
            let write = |name: &str, text: &str, mode: u32| {
                let p = data.join(name);
                std::fs::write(&p, text).unwrap();
                set_mode(&p, mode);
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
                }
            };
            write("server.crt", cert, 0o644);
            write("server.key", key, 0o600);
            // TCP only with TLS: a client that does not ask for it is refused.
            write(
                "pg_hba.conf",
                "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
                0o600,
            );
            let conf = data.join("postgresql.conf");
            let mut text = std::fs::read_to_string(&conf).unwrap();
            text.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            std::fs::write(&conf, text).unwrap();
        }
        // A port taken between choosing and binding: try again.
        for _ in 0..5 {
            pg.port = free_port();
            if pg.pg_ctl_start() {
                return pg;
            }
        }
        panic!("PostgreSQL did not start: {}", pg.log());
    }

    fn pg_ctl_start(&self) -> bool {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                self.dir.path().join("server.log").to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        out.status.success()
    }

    /// Stops the server at once (as a crash would), keeping its data.
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// Starts it again on the same port after [`TestPostgres::stop`].
    pub fn restart(&self) {
        assert!(
            self.pg_ctl_start(),
            "PostgreSQL did not restart: {}",
            self.log()
        );
    }

    /// Creates an empty database.
    pub fn create_db(&self, name: &str) {
        let out = self.psql(&format!("CREATE DATABASE \"{name}\""));
        assert!(out.status.success(), "createdb {name}: {}", text(&out));
    }

    /// Runs one SQL statement in database `postgres`.
    pub fn psql(&self, sql: &str) -> Output {
        self.psql_in("postgres", sql)
    }

    /// Runs one SQL statement in database `db`; the output is unaligned.
    pub fn psql_in(&self, db: &str, sql: &str) -> Output {
        let port = self.port.to_string();
        self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                USER,
                "-d",
                db,
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        )
    }

    /// The URL of database `db` (without the password).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A file holding the password, as `[store] password_file` reads it.
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("pwfile")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bindir.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args)
            .env("PGPASSWORD", PASSWORD)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn id_of(user: &str, flag: &str) -> u32 {
    let out = Command::new("id").args([flag, user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no user {user}: PostgreSQL's package creates it"))
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
