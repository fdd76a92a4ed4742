//! The Debian package (issue #15 item 7): `packaging/debian/build-deb.sh`
//! builds a .deb from this build's binary; the test reads its metadata and
//! contents with dpkg-deb, lays it out in a temporary root the way dpkg and
//! systemd would (sysusers, tmpfiles), and runs the packaged binary on the
//! packaged configuration: `check-config`, then `serve` answering SMTP and
//! the CLI reaching the admin API with the packaged token.
//!
//! What needs a running systemd (enable, start, READY) is
//! `packaging/debian/smoke-install.sh`, for a disposable Debian machine.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command, panicking with its output when it fails.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tools the test needs: dpkg-deb and gzip come with every Debian, the
/// systemd tools from the `systemd` package (.ci/run installs it).
fn require_tools() {
    for tool in [
        "dpkg-deb",
        "gzip",
        "objdump",
        "systemd-sysusers",
        "systemd-tmpfiles",
    ] {
        let found = Command::new("sh")
            .args([
                "-c",
                &format!("PATH=$PATH:/usr/sbin:/sbin command -v {tool}"),
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} is missing: apt-get install dpkg binutils gzip systemd"
        );
    }
}

/// Builds the package once; returns its path (inside `out`).
fn build(out: &Path) -> PathBuf {
    let o = run(Command::new("bash")
        .arg(repo().join("packaging/debian/build-deb.sh"))
        .arg(out)
        .env("UGEM_BIN", env!("CARGO_BIN_EXE_ugem"))
        .env("DEB_COMPRESSION", "gzip"));
    let deb = PathBuf::from(text(&o).trim());
    assert!(deb.is_file(), "build-deb.sh printed {deb:?}");
    deb
}

/// `dpkg-deb --contents`: path -> (mode string, owner/group).
fn contents(deb: &Path) -> BTreeMap<String, (String, String)> {
    let listing = text(&run(Command::new("dpkg-deb").arg("--contents").arg(deb)));
    listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f[5].trim_start_matches('.').to_string();
            (path, (f[0].to_string(), f[1].to_string()))
        })
        .collect()
}

#[test]
fn the_debian_package_installs_and_runs() {
    require_tools();
    let work = tempfile::tempdir().unwrap();
    let deb = build(work.path());

    // Metadata: the binary's own version, a libc6 dependency read off the
    // binary, and the package's name in its file name.
    let field = |f: &str| {
        text(&run(Command::new("dpkg-deb")
            .arg("--field")
            .arg(&deb)
            .arg(f)))
        .trim()
        .to_string()
    };
    assert_eq!(field("Package"), "ugem");
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    let depends = field("Depends");
    assert!(depends.starts_with("libc6 (>= 2."), "Depends: {depends}");
    assert!(depends.contains("systemd"), "Depends: {depends}");
    assert!(
        deb.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("ugem_{}_", env!("CARGO_PKG_VERSION")))
    );

    // Contents, with owners and modes: root owns everything in the package
    // (the ugem group is given to /etc/ugem by postinst, once it exists).
    let files = contents(&deb);
    for (path, mode) in [
        ("/usr/bin/ugem", "-rwxr-xr-x"),
        ("/etc/ugem/ugem.toml", "-rw-r-----"),
        ("/etc/ugem/tls/", "drwxr-x---"),
        ("/usr/lib/systemd/system/ugem.service", "-rw-r--r--"),
        ("/usr/lib/sysusers.d/ugem.conf", "-rw-r--r--"),
        ("/usr/lib/tmpfiles.d/ugem.conf", "-rw-r--r--"),
        ("/usr/share/man/man1/ugem.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/ugem-serve.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/ugem-domain-add.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/ugem-queue.1.gz", "-rw-r--r--"),
        ("/usr/share/bash-completion/completions/ugem", "-rw-r--r--"),
        ("/usr/share/zsh/vendor-completions/_ugem", "-rw-r--r--"),
        (
            "/usr/share/fish/vendor_completions.d/ugem.fish",
            "-rw-r--r--",
        ),
        ("/usr/share/doc/ugem/copyright", "-rw-r--r--"),
        ("/usr/share/doc/ugem/README.md", "-rw-r--r--"),
        ("/usr/share/doc/ugem/ugem.toml.example", "-rw-r--r--"),
    ] {
        let (m, owner) = files
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from the package: {files:#?}"));
        assert_eq!(m, mode, "{path}");
        assert_eq!(owner, "root/root", "{path}");
    }
    // Every command has its page; the packagers' own `generate` has none.
    assert!(
        files.keys().filter(|p| p.contains("/man1/")).count() > 30,
        "too few man pages"
    );
    assert!(!files.keys().any(|p| p.contains("ugem-generate")));

    // Control files: the configuration is a conffile (an upgrade keeps the
    // administrator's changes), the maintainer scripts are valid sh.
    let control = work.path().join("control");
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/ugem/ugem.toml");
    for script in ["postinst", "prerm", "postrm"] {
        run(Command::new("sh").arg("-n").arg(control.join(script)));
    }

    // The tree as dpkg would lay it down, then what postinst runs
    // (systemd-sysusers, systemd-tmpfiles), aimed at that root.
    let root = work.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    run(Command::new("systemd-sysusers").arg(format!("--root={}", root.display())));
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("ugem:")),
        "no ugem user: {passwd}"
    );
    run(Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", root.display()))
        .args(["--create", "ugem.conf"]));
    assert!(
        root.join("var/lib/ugem").is_dir(),
        "tmpfiles made no /var/lib/ugem"
    );

    // Man pages are roff, completions are valid bash.
    let page = text(&run(Command::new("gzip")
        .arg("-dc")
        .arg(root.join("usr/share/man/man1/ugem-domain-add.1.gz"))));
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    assert!(page.contains("server"), "the page names no option: {page}");
    run(Command::new("bash")
        .arg("-n")
        .arg(root.join("usr/share/bash-completion/completions/ugem")));

    // The packaged binary on the packaged configuration, with the data
    // folder and ports moved by environment (as a systemd drop-in would).
    let bin = root.join("usr/bin/ugem");
    let config = root.join("etc/ugem/ugem.toml");
    let data = work.path().join("data");
    let envs = [
        ("UGEM_SERVER__DATA_DIR", data.to_str().unwrap()),
        ("UGEM_SMTP__LISTEN", "127.0.0.1:0"),
        ("UGEM_ADMIN__LISTEN", "127.0.0.1:0"),
        ("UGEM_SERVER__LOG_FORMAT", "json"),
    ];
    assert!(text(&run(Command::new(&bin).arg("--version"))).starts_with("ugem "));
    run(Command::new(&bin)
        .args(["check-config", "--config"])
        .arg(&config)
        .envs(envs));

    let mut child = Command::new(&bin)
        .args(["serve", "--config"])
        .arg(&config)
        .envs(envs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "ugem ready"
            {
                let _ = tx.send((
                    v["smtp"].as_str().unwrap_or_default().to_string(),
                    v["admin"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(30));
    let Ok((smtp, admin)) = ready else {
        let _ = child.kill();
        panic!("the packaged ugem did not become ready");
    };
    let mut banner = [0u8; 64];
    let mut s = std::net::TcpStream::connect(smtp.split(',').next().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = s.read(&mut banner).unwrap();
    let banner = String::from_utf8_lossy(&banner[..n]).into_owned();
    drop(s);
    // The CLI finds the API and its token in the packaged configuration
    // (the listener's port moved by environment, as for the server).
    let list = Command::new(&bin)
        .args(["--config"])
        .arg(&config)
        .args(["domain", "list"])
        .envs(envs)
        .env("UGEM_ADMIN__LISTEN", &admin)
        .env_remove("UGEM_ADMIN_TOKEN")
        .output()
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(banner.starts_with("220 "), "banner: {banner}");
    assert!(
        list.status.success(),
        "domain list: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(status.success(), "serve exited with {status}");
}
