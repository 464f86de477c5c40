//! The deployment assets (SPEC HA-4) hold together. `deploy/check.sh` passes: it lints
//! the `Dockerfile` with hadolint and checks the Helm chart `deploy/helm/gatepulse`
//! with Helm's own engine — lint, render, the values and `ci/*.yaml` against
//! `values.schema.json`, every rendered object against the Kubernetes schemas, the
//! chart's rules (probes, pod security, node ids, every `GATEPULSE_*` variable a key
//! of `router/config/default.toml`, …) and the values it must refuse
//! (`deploy/helm/tools/check_chart.py` lists them all). Its tools come from PyPI into
//! a virtualenv of its own (pinned in `deploy/helm/tools/requirements.txt`), so the
//! first run needs PyPI and later runs reuse it; `DEPLOY_CHECK_SKIP=1` skips that
//! test on a machine that cannot reach PyPI.
//!
//! Without a container engine, the Dockerfile's basics are read here as text: two
//! stages (the Rust builder, then a runtime image), the release build of `gp`, a
//! non-root `USER` in the runtime stage, `ENTRYPOINT ["gp"]` with `CMD ["serve"]`, the
//! port, the data volume and the listen address; and `.dockerignore` keeps in the
//! build context what the build reads (every workspace member, and what
//! `router/build.rs` embeds from outside the crate).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use gatepulse_e2e::{workspace_file as read, workspace_root};

/// One Dockerfile instruction: its keyword in upper case and its arguments, with
/// continuation lines joined and comments left out.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        // Docker drops comment and empty lines, also inside a continued instruction.
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((current.as_str(), ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_owned(),
        });
        current.clear();
    }
    out
}

/// The arguments of every `keyword` instruction of `stage`.
fn args_of<'a>(stage: &'a [Instruction], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|i| i.keyword == keyword)
        .map(|i| i.args.as_str())
        .collect()
}

/// An exec-form argument list with its spaces removed: `[ "gp" ]` → `["gp"]`.
fn exec_form(args: &str) -> String {
    args.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn dockerfile_builds_gp_in_one_stage_and_runs_it_unprivileged_in_another() {
    let all = instructions(&read("Dockerfile"));
    let froms: Vec<&Instruction> = all.iter().filter(|i| i.keyword == "FROM").collect();
    assert!(
        froms.len() >= 2,
        "Dockerfile: a multi-stage build has two FROM lines (builder, runtime); found {}",
        froms.len()
    );

    // The builder: a Rust image, named, that builds the release binary.
    let builder: Vec<&str> = froms[0].args.split_whitespace().collect();
    assert!(
        builder[0].starts_with("rust:"),
        "Dockerfile: the first stage builds with a rust: image, not {}",
        builder[0]
    );
    assert!(
        builder.len() == 3 && builder[1].eq_ignore_ascii_case("as"),
        "Dockerfile: the builder stage is named (`FROM rust:… AS builder`), found `FROM {}`",
        froms[0].args
    );
    let stage = builder[2];
    assert!(
        all.iter().any(|i| i.keyword == "RUN"
            && i.args
                .contains("cargo build --release --locked -p gatepulse --bin gp")),
        "Dockerfile: no `RUN … cargo build --release --locked -p gatepulse --bin gp`"
    );

    // The runtime stage: what follows the last FROM.
    let last = all.iter().rposition(|i| i.keyword == "FROM").unwrap();
    let runtime = &all[last..];
    assert!(
        !runtime[0].args.starts_with("rust:"),
        "Dockerfile: the runtime stage must be a small image, not the Rust toolchain ({})",
        runtime[0].args
    );
    let of = |keyword: &str| args_of(runtime, keyword);
    assert!(
        of("COPY")
            .iter()
            .any(|args| args.contains(&format!("--from={stage}")) && args.contains("/gp")),
        "Dockerfile: the runtime stage copies gp from the `{stage}` stage"
    );

    let users = of("USER");
    let user = users
        .last()
        .expect("Dockerfile: the runtime stage sets a USER (it must not run as root)");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        !uid.is_empty() && uid != "root" && uid != "0",
        "Dockerfile: the runtime USER must not be root, found `USER {user}`"
    );
    assert_eq!(
        uid, "10001",
        "Dockerfile: the runtime user is uid 10001 (the Helm chart's runAsUser)"
    );

    let entrypoints: Vec<String> = of("ENTRYPOINT").into_iter().map(exec_form).collect();
    assert_eq!(
        entrypoints,
        [r#"["gp"]"#],
        "Dockerfile: the runtime stage has one `ENTRYPOINT [\"gp\"]`"
    );
    assert_eq!(
        of("CMD").last().copied().map(exec_form).as_deref(),
        Some(r#"["serve"]"#),
        "Dockerfile: `CMD [\"serve\"]` so that the image runs the server"
    );
    assert!(
        of("EXPOSE")
            .iter()
            .any(|a| a.split_whitespace().any(|p| p == "8080" || p == "8080/tcp")),
        "Dockerfile: EXPOSE 8080"
    );
    let env = of("ENV").join(" ");
    for setting in ["GATEPULSE_LISTEN=0.0.0.0:8080", "GATEPULSE_DATA_DIR=/data"] {
        assert!(
            env.split_whitespace().any(|s| s == setting),
            "Dockerfile: the runtime stage sets ENV {setting}"
        );
    }
    assert!(
        of("VOLUME").iter().any(|a| a.contains("/data")),
        "Dockerfile: /data is a VOLUME"
    );
}

/// The `members` of `[workspace]` in the root Cargo.toml.
fn workspace_members(manifest: &str) -> Vec<String> {
    let start = manifest
        .find("members")
        .expect("Cargo.toml lists the workspace members");
    let open = start + manifest[start..].find('[').unwrap() + 1;
    let close = open + manifest[open..].find(']').unwrap();
    manifest[open..close]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The paths outside the crate that `router/build.rs` reads (`"../<path>"` literals),
/// relative to the workspace root.
fn build_script_inputs(build_rs: &str) -> Vec<String> {
    build_rs
        .split("\"../")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn dockerignore_keeps_what_the_image_build_reads() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| l.trim_start_matches("./").trim_matches('/'))
        .collect();
    let mut needed = workspace_members(&read("Cargo.toml"));
    assert!(
        needed.iter().any(|m| m == "router"),
        "Cargo.toml: router is a workspace member"
    );
    let inputs = build_script_inputs(&read("router/build.rs"));
    assert!(
        inputs.iter().any(|p| p == "ui/console"),
        "router/build.rs embeds ../ui/console (this test reads its \"../…\" paths), found {inputs:?}"
    );
    needed.extend(inputs);
    needed.extend(["Cargo.toml".to_owned(), "Cargo.lock".to_owned()]);
    for path in &needed {
        for pattern in &patterns {
            let excluded = *pattern == "*"
                || *pattern == "**"
                || path == pattern
                || path.starts_with(&format!("{pattern}/"));
            assert!(
                !excluded,
                ".dockerignore: `{pattern}` leaves `{path}` out of the build context, which the image build reads"
            );
        }
    }
    for kept_out in [".git", "**/target"] {
        assert!(
            patterns.contains(&kept_out),
            ".dockerignore: `{kept_out}` should stay out of the build context"
        );
    }
}

/// `deploy/check.sh`: hadolint on the Dockerfile; the Helm chart linted and rendered
/// by Helm, validated against its values schema and the Kubernetes schemas, its rules
/// and its refusals. Fails with the script's output.
#[test]
fn deploy_check_passes() {
    if std::env::var_os("DEPLOY_CHECK_SKIP").is_some() {
        eprintln!("skipped: DEPLOY_CHECK_SKIP is set");
        return;
    }
    let out = Command::new("bash")
        .arg(workspace_root().join("deploy/check.sh"))
        .output()
        .expect("bash runs deploy/check.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "deploy/check.sh failed (it needs python3 ≥ 3.11 and PyPI for its first run; \
         DEPLOY_CHECK_SKIP=1 skips this test):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for reported in [
        "ok   Dockerfile: no hadolint findings",
        "ok   ci/cluster-postgres-values.yaml",
        "ok   ci/single-node-embedded-values.yaml",
        "ok   refused: embedded with replicas 3",
        "deploy/check.sh: all checks passed",
    ] {
        assert!(
            stdout.contains(reported),
            "deploy/check.sh did not report `{reported}`:\n{stdout}"
        );
    }
}

#[test]
fn the_dockerfile_reader_reads_what_the_checks_rely_on() {
    let text = "# syntax=docker/dockerfile:1\nFROM rust:1 AS b\nRUN a \\\n    # note\n    && b\n\nuser 10001:10001\nENTRYPOINT [ \"gp\" ]\n";
    let all = instructions(text);
    let keywords: Vec<&str> = all.iter().map(|i| i.keyword.as_str()).collect();
    assert_eq!(keywords, ["FROM", "RUN", "USER", "ENTRYPOINT"]);
    assert_eq!(all[1].args, "a  && b");
    assert_eq!(all[2].args, "10001:10001");
    assert_eq!(exec_form(&all[3].args), r#"["gp"]"#);
    assert_eq!(
        workspace_members("[workspace]\nmembers = [\"router\", \"tests\"]\n"),
        ["router", "tests"]
    );
    assert_eq!(
        build_script_inputs(r#"join("../ui/console"); x("../a/b")"#),
        ["ui/console", "a/b"]
    );
}
