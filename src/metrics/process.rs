//! The process's own resource gauges under the names every Prometheus
//! client uses (`process_resident_memory_bytes`, `process_open_fds`,
//! `process_max_fds`), read from `/proc/self` at scrape time. Elsewhere
//! than Linux they are left out.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Adds the process gauges that can be read here to `r`.
pub(super) fn register(r: &mut Registry) {
    let mut add = |name: &str, help: &str, v: Option<u64>| {
        if let Some(v) = v {
            let g: Gauge = Gauge::default();
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
            r.register(name, help, g);
        }
    };
    add(
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        resident_bytes(),
    );
    add(
        "process_open_fds",
        "Number of open file descriptors",
        open_fds(),
    );
    add(
        "process_max_fds",
        "Maximum number of open file descriptors",
        max_fds(),
    );
}

/// `VmRSS` of /proc/self/status (kB there).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Entries of /proc/self/fd (the one reading it included, as other
/// clients count).
fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// The soft limit on open files, from /proc/self/limits.
fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_max_open_files(&limits)
}

fn parse_max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_texts() {
        let status = "Name:\tugem\nVmPeak:\t  10 kB\nVmRSS:\t    2048 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        assert!(resident_bytes().unwrap() > 0);
        // Other tests open files in parallel: no exact count.
        let open = open_fds().unwrap();
        assert!(open >= 3, "stdin, stdout, stderr at least: {open}");
        assert!(max_fds().unwrap() >= open);
    }
}
