//! This node's identity among the nodes that share a store: `cluster.node_id`, or one
//! generated at its first start and kept in the data dir (`node-id`), so that a
//! restarted node is the same node. Its deliveries' leases carry it (`claimed_by`),
//! and at start it returns only its own leases to the queue, never another node's
//! (SPEC HA-2).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// The file in the data dir that keeps a generated node id.
pub const NODE_ID_FILE: &str = "node-id";
/// Node ids are at most this long.
pub const MAX_NODE_ID: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "cluster.node_id {0:?}: 1 to 64 letters, digits, '.', '_' or '-' (it names this node in leases and logs)"
    )]
    BadNodeId(String),
    #[error("{path}: {source}")]
    NodeIdFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Whether `id` may name a node.
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NODE_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The configured node id, else the one kept in the data dir, else a new one (kept
/// there for the next start).
pub fn node_id(config: &Config) -> Result<String, ClusterError> {
    let configured = config.cluster.node_id.trim();
    if !configured.is_empty() {
        return if valid_node_id(configured) {
            Ok(configured.to_owned())
        } else {
            Err(ClusterError::BadNodeId(configured.to_owned()))
        };
    }
    kept_or_new(&config.data_dir)
}

fn kept_or_new(data_dir: &Path) -> Result<String, ClusterError> {
    let path = data_dir.join(NODE_ID_FILE);
    let io = |source| ClusterError::NodeIdFile {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if valid_node_id(id) {
                return Ok(id.to_owned());
            }
            return Err(ClusterError::BadNodeId(id.to_owned()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let id = format!("node-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    // Written whole or not at all: a crash never leaves half an id.
    let tmp = data_dir.join(format!("{NODE_ID_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(format!("{id}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_generated_id_is_kept_and_a_configured_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let first = kept_or_new(dir.path()).unwrap();
        assert!(valid_node_id(&first), "{first}");
        assert_eq!(
            kept_or_new(dir.path()).unwrap(),
            first,
            "the same node after a restart"
        );
        let mut config = Config::defaults_for_dev(dir.path().to_owned(), "t".repeat(32)).unwrap();
        assert_eq!(node_id(&config).unwrap(), first);
        config.cluster.node_id = "gp-eu-1".into();
        assert_eq!(node_id(&config).unwrap(), "gp-eu-1");
        for bad in ["has space", "ünï", &"x".repeat(65)] {
            config.cluster.node_id = bad.to_owned();
            assert!(node_id(&config).is_err(), "{bad}");
        }
        std::fs::write(dir.path().join(NODE_ID_FILE), "bad id\n").unwrap();
        config.cluster.node_id = String::new();
        assert!(
            node_id(&config).is_err(),
            "a damaged file is named, not replaced"
        );
    }
}
