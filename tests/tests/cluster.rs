//! Nodes sharing a store (SPEC HA-1..4; the cluster itself is issue 16): what is built
//! so far, against the real binary. A node has an id that survives its restarts
//! (`cluster.node_id`, or one kept in `<data_dir>/node-id`), its leases carry it, and
//! a bad id is refused with the key named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatepulse_e2e::Gp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_its_id_across_restarts_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut gp = Gp::start(dir.path(), &[]).await.unwrap();
    let file = dir.path().join("node-id");
    let first = std::fs::read_to_string(&file).unwrap();
    let id = first.trim();
    assert!(
        id.starts_with("node-") && id.len() == "node-".len() + 12,
        "{first:?}"
    );
    assert_eq!(gp.terminate().unwrap(), 0);
    gp.restart().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        first,
        "the same node"
    );
    drop(gp);

    // A configured id wins over the kept one; a bad one stops the start, named.
    let out = std::process::Command::new(gatepulse_e2e::gp_binary().unwrap())
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("GATEPULSE_CLUSTER__NODE_ID", "two words")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success(), "gp started with a bad node id");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster.node_id"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first, "left alone");
}
