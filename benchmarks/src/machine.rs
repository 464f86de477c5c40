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

/// Describes this machine; `store_dir` is where the benchmark stores live.
pub fn describe(gp_version: &str, store_dir: &Path) -> (Machine, String) {
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
        gp: gp_version.to_owned(),
    };
    let hypervisor = if cpuinfo.contains(" hypervisor") {
        "yes (virtual machine)"
    } else {
        "no"
    };
    let md = format!(
        "# Machine\n\n\
         | | |\n|---|---|\n\
         | CPU | {} |\n| cores (available to this process) | {} |\n| hypervisor flag | {hypervisor} |\n\
         | memory | {} |\n| store disk | {} |\n| OS | {} |\n| kernel | {} |\n\
         | rustc | {} |\n| gp | {} |\n\n\
         `df -hT {store}`:\n\n```text\n{df}\n```\n",
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
}
