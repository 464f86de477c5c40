//! `gp init` as a newcomer runs it: the files it writes start a real server with no
//! other configuration, the client commands and `gp doctor` then work from the
//! profile alone, and the documented precedence (flag > environment > profile) holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gatepulse_e2e::{free_port, gp_binary};
use serde_json::Value;

/// `gp` with no GATEPULSE_* variable of the test's environment but the client config.
fn gp(client_config: &Path) -> Command {
    let mut cmd = Command::new(gp_binary().unwrap());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEPULSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("GATEPULSE_CLIENT_CONFIG", client_config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_ready(url: &str) {
    gatepulse_e2e::install_crypto_provider();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server at {url} did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_a_setup_that_serves_and_the_profile_drives_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let client = dir.path().join("client").join("config.toml");
    let config = dir.path().join("gatepulse.toml");
    let port = free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}");

    // Nothing runs yet: the files are written, and it says what to run next.
    let mut cmd = gp(&client);
    cmd.args(["init", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("no server answers at {url}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("gp serve --config {}", config.display())),
        "{out}"
    );
    let key = dir.path().join("master.key");
    for p in [&config, &key, &client] {
        assert_eq!(mode(p), 0o600, "{}", p.display());
    }
    let profile = std::fs::read_to_string(&client).unwrap();
    assert!(
        profile.contains("[profiles.default]") && profile.contains(&url),
        "{profile}"
    );

    // The configuration alone starts a server (no GATEPULSE_* variable at all).
    let mut serve = gp(&client);
    serve
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null());
    let _server = Server(serve.spawn().unwrap());
    wait_ready(&url).await;

    // gp doctor and the client commands find the server and the token in the profile.
    let mut cmd = gp(&client);
    cmd.args(["doctor", "--output", "json", "--config"])
        .arg(&config);
    let (code, out, _) = run(cmd);
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let check = |name: &str| -> Value {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(check("profile")["status"], "ok", "{out}");
    assert_eq!(
        check("token")["message"],
        "accepted: the admin token",
        "{out}"
    );
    let mut cmd = gp(&client);
    cmd.args(["tenants", "create", "acme"]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let tenant: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tenant["name"], "acme");
    // For people: the list as a table, the id first.
    let mut cmd = gp(&client);
    cmd.args(["tenants", "list", "--output", "text"]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("ID "), "{out}");
    let row = lines.find(|l| l.contains("acme")).expect("a row for acme");
    assert!(row.starts_with(tenant["id"].as_str().unwrap()), "{out}");

    // The environment beats the profile, the command line beats both.
    let mut cmd = gp(&client);
    cmd.env("GATEPULSE_TOKEN", "gpk_wrong")
        .args(["tenants", "list"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(err.contains("401") || err.contains("invalid"), "{err}");
    let mut cmd = gp(&client);
    cmd.args(["--server", "http://127.0.0.1:9", "tenants", "list"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(err.contains("request failed"), "{err}");
    let mut cmd = gp(&client);
    cmd.args(["--profile", "nope", "tenants", "list"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(err.contains("no profile \"nope\""), "{err}");

    // Running it again keeps what exists; a profile whose token the server refuses
    // is reported (and written, to be fixed with --force).
    let mut cmd = gp(&client);
    cmd.args(["init", "--config"]).arg(&config);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    let mut cmd = gp(&client);
    cmd.args([
        "--profile",
        "ops",
        "--server",
        &url,
        "init",
        "--client-only",
        "--token",
        "gpk_wrong",
    ]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(err.contains("refuses the profile's token"), "{err}");
    let profiles = std::fs::read_to_string(&client).unwrap();
    assert!(
        profiles.contains("[profiles.ops]") && profiles.contains("[profiles.default]"),
        "{profiles}"
    );
}
