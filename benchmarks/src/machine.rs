//! The machine description (`machine.md`).

use std::path::Path;
use std::process::Command;

use crate::report::Machine;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn run(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// `key : value` from /proc-style text.
pub fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// The store disk's own `fdatasync` latency: 4 KiB written and flushed every 5 ms.
#[derive(Debug, Clone, PartialEq)]
pub struct FsyncProbe {
    pub flushes: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub over_50ms: usize,
}

impl FsyncProbe {
    /// Summarizes flush latencies (ms); `None` without any.
    pub fn from_latencies(mut ms: Vec<f64>) -> Option<Self> {
        if ms.is_empty() {
            return None;
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        Some(Self {
            flushes: ms.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
            over_50ms: ms.iter().filter(|&&v| v > 50.0).count(),
        })
    }
}

/// Measures the store disk's flush latency for `how_long` with nothing else running:
/// every durable commit pays one, so its tail bounds what any publish latency target
/// can show on this machine.
pub fn probe_fsync(store_dir: &Path, how_long: std::time::Duration) -> Option<FsyncProbe> {
    use std::io::Write;
    let path = store_dir.join(format!("gp-bench-fsync-probe-{}", std::process::id()));
    let mut file = std::fs::File::create(&path).ok()?;
    let block = [0x5au8; 4096];
    let mut ms = Vec::new();
    let until = std::time::Instant::now() + how_long;
    while std::time::Instant::now() < until {
        if file.write_all(&block).is_err() {
            break;
        }
        let t = std::time::Instant::now();
        if file.sync_data().is_err() {
            break;
        }
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    FsyncProbe::from_latencies(ms)
}

/// Describes this machine; `store_dir` is where the benchmark stores live, and its
/// disk's flush latency is probed for `probe` (zero: not probed).
pub fn describe(
    gp_version: &str,
    store_dir: &Path,
    probe: std::time::Duration,
) -> (Machine, String) {
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    let memory = field(&meminfo, "MemTotal")
        .and_then(|v| {
            v.split_whitespace()
                .next()
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|kib| format!("{:.1} GiB RAM", kib / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown RAM".into());
    let store = store_dir.to_string_lossy().into_owned();
    let df = run("df", &["-hT", &store]);
    let disk = df
        .lines()
        .nth(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!(
                "{} {} ({} total, {} free)",
                f.first().unwrap_or(&"?"),
                f.get(1).unwrap_or(&"?"),
                f.get(2).unwrap_or(&"?"),
                f.get(4).unwrap_or(&"?")
            )
        })
        .unwrap_or_else(|| "unknown".into());
    let os = field(&read("/etc/os-release"), "PRETTY_NAME")
        .or_else(|| {
            read("/etc/os-release").lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let m = Machine {
        cpu_model: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".into()),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory,
        disk,
        kernel: format!("Linux {}", read("/proc/sys/kernel/osrelease").trim()),
        os,
        rustc: run("rustc", &["--version"]),
        gp: {
            let env = crate::server::extra_env();
            let env = if env.is_empty() {
                String::new()
            } else {
                format!(", env: {}", env.join(" "))
            };
            format!(
                "{gp_version} (store: {}, {}{env})",
                crate::server::store_name(),
                crate::server::cluster_name()
            )
        },
    };
    let hypervisor = if cpuinfo.contains(" hypervisor") {
        "yes (virtual machine)"
    } else {
        "no"
    };
    let fsync = if probe.is_zero() {
        String::new()
    } else {
        match probe_fsync(store_dir, probe) {
            Some(p) => format!(
                "\nThe store disk's own flush latency, before any scenario ({} s of 4 KiB \
                 writes each followed by `fdatasync`, nothing else running): {} flushes, p50 \
                 {:.2} ms, p99 {:.2} ms, max {:.1} ms, {} over 50 ms. Every durable commit \
                 pays one flush, so this tail is a floor under any publish latency measured \
                 here.\n",
                probe.as_secs(),
                p.flushes,
                p.p50_ms,
                p.p99_ms,
                p.max_ms,
                p.over_50ms
            ),
            None => "\nThe store disk's flush latency could not be probed.\n".into(),
        }
    };
    let md = format!(
        "# Machine\n\n\
         | | |\n|---|---|\n\
         | CPU | {} |\n| cores (available to this process) | {} |\n| hypervisor flag | {hypervisor} |\n\
         | memory | {} |\n| store disk | {} |\n| OS | {} |\n| kernel | {} |\n\
         | rustc | {} |\n| gp | {} |\n\n\
         `df -hT {store}`:\n\n```text\n{df}\n```\n{fsync}",
        m.cpu_model, m.cores, m.memory, m.disk, m.os, m.kernel, m.rustc, m.gp
    );
    (m, md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields() {
        let text = "processor\t: 0\nmodel name\t: Intel Xeon\nMemTotal:       24576000 kB\n";
        assert_eq!(field(text, "model name").as_deref(), Some("Intel Xeon"));
        assert_eq!(field(text, "MemTotal").as_deref(), Some("24576000 kB"));
        assert_eq!(field(text, "missing"), None);
    }

    #[test]
    fn fsync_summary() {
        assert_eq!(FsyncProbe::from_latencies(vec![]), None);
        let p = FsyncProbe::from_latencies((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!(p.flushes, 100);
        assert_eq!(p.p50_ms, 51.0);
        assert_eq!(p.max_ms, 100.0);
        assert_eq!(p.over_50ms, 50);
    }

    #[test]
    fn the_probe_flushes_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = probe_fsync(dir.path(), std::time::Duration::from_millis(50)).unwrap();
        assert!(p.flushes >= 1);
        assert!(p.max_ms >= p.p50_ms);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
