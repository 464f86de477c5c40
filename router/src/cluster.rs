//! This node among the nodes that share a store: its identity and its part in the
//! leadership.
//!
//! **Identity.** `cluster.node_id`, or one generated at its first start and kept in
//! the data dir (`node-id`), so that a restarted node is the same node. Its
//! deliveries' leases carry it (`claimed_by`), and at start it returns only its own
//! leases to the queue, never another node's (SPEC HA-2).
//!
//! **Leadership** (SPEC HA-1, HA-2). Every `election_interval_ms` the node beats
//! (`Store::cluster_beat`): its heartbeat, and the leader's renewal or the others'
//! bid, decided in the store's clock. A beat that renews or wins makes the node
//! *trusted* until `start of that beat + leader_ttl_ms - trust_margin_ms`, measured
//! on its own monotonic clock: the leadership cannot expire in the database before
//! the node stops acting on it, even if the beat's answer came late, the process was
//! paused (SIGSTOP, a long GC-like stall) or the database became unreachable. Claims
//! made as leader also carry the term (`Claim::fence`), so the database refuses a
//! claim from a term that ended whatever the node's clock says.
//!
//! What only the leader does asks [`Leadership::acting`] each time: the dispatcher in
//! mode `leader` (every node dispatches in `active-active`), the lease reaper, the
//! parked-delivery sweep and retention. A single-process store (redb) makes its one
//! node the leader at the first beat.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::{ClusterConfig, ClusterMode};
use crate::store::{Beat, LeaderState, Store};
use crate::telemetry;

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

/// What a node knows of the leadership, as the last beat (or the trust window's end)
/// left it; sent to whoever watches (the dispatcher, the stream notices).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// The node holding an unexpired leadership, as the store last said.
    pub leader: Option<String>,
    pub term: u64,
    /// This node is the leader and may act as one.
    pub acting: bool,
}

/// This node's part in the leadership, shared by the election task (which writes it)
/// and what may run only on the leader (which asks [`Leadership::acting`]).
#[derive(Debug)]
pub struct Leadership {
    node: String,
    mode: ClusterMode,
    /// Whether to say so in metrics (nodes on a shared store; a single redb node
    /// never trips the "no leader" alert).
    clustered: bool,
    base: Instant,
    /// Nanoseconds after `base` until which this node may act as leader (0: not).
    trusted_until: AtomicU64,
    /// The term this node holds (0: none).
    term: AtomicU64,
    view: watch::Sender<View>,
}

impl Leadership {
    pub fn new(node: String, mode: ClusterMode, clustered: bool) -> Arc<Self> {
        Arc::new(Self {
            node,
            mode,
            clustered,
            base: Instant::now(),
            trusted_until: AtomicU64::new(0),
            term: AtomicU64::new(0),
            view: watch::Sender::new(View::default()),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn mode(&self) -> ClusterMode {
        self.mode
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The term this node may act as leader under right now, if any.
    pub fn acting(&self) -> Option<u64> {
        let until = self.trusted_until.load(Ordering::Acquire);
        let term = self.term.load(Ordering::Acquire);
        (term > 0 && self.nanos(Instant::now()) < until).then_some(term)
    }

    /// Whether this node's dispatcher claims deliveries now, and the fence its claims
    /// carry: the leader's term in mode `leader`; in `active-active` every node
    /// claims, unfenced.
    pub fn dispatching(&self) -> Option<Option<u64>> {
        match self.mode {
            ClusterMode::ActiveActive => Some(None),
            ClusterMode::Leader => self.acting().map(Some),
        }
    }

    /// Follows the view: changes of leader and of this node's acting.
    pub fn subscribe(&self) -> watch::Receiver<View> {
        self.view.subscribe()
    }

    pub fn view(&self) -> View {
        self.view.borrow().clone()
    }

    /// Takes in what a beat that started at `started` found.
    fn observe(&self, state: &LeaderState, started: Instant, ttl: Duration, margin: Duration) {
        let before = self.view();
        if state.held {
            let until = self.nanos(started + ttl.saturating_sub(margin));
            self.term.store(state.term, Ordering::Release);
            self.trusted_until.store(until, Ordering::Release);
        } else {
            self.trusted_until.store(0, Ordering::Release);
            self.term.store(0, Ordering::Release);
        }
        let acting = self.acting().is_some();
        self.publish(
            View {
                leader: state.leader.clone(),
                term: state.term,
                acting,
            },
            &before,
        );
    }

    /// The trust window ended without a renewal: this node stops acting as leader.
    fn lapse(&self) {
        let before = self.view();
        if before.acting && self.acting().is_none() {
            tracing::warn!(node_id = %self.node, term = before.term,
                "leadership not renewed in time; no longer acting as leader");
            self.publish(
                View {
                    acting: false,
                    ..before.clone()
                },
                &before,
            );
        }
    }

    fn publish(&self, now: View, before: &View) {
        if now == *before {
            return;
        }
        if now.term != before.term && now.leader.is_some() {
            let won = now.acting;
            telemetry::record_leader_change(won);
            if won {
                tracing::info!(node_id = %self.node, term = now.term, "this node is the leader");
            } else {
                tracing::info!(leader = ?now.leader, term = now.term, "the leadership changed");
            }
        }
        if before.acting && !now.acting {
            tracing::warn!(node_id = %self.node, term = before.term, "this node is no longer the leader");
        }
        if self.clustered {
            telemetry::set_cluster_leader(now.acting);
        }
        self.view.send_replace(now);
    }
}

/// What the election task needs besides the store.
#[derive(Debug, Clone)]
pub struct Election {
    pub address: String,
    pub version: String,
    pub started_at: i64,
    pub ttl: Duration,
    pub interval: Duration,
    pub margin: Duration,
}

impl Election {
    pub fn from_config(c: &ClusterConfig, address: String) -> Self {
        Self {
            address: if c.advertise_address.is_empty() {
                address
            } else {
                c.advertise_address.clone()
            },
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: crate::clock::now_ms(),
            ttl: Duration::from_millis(c.leader_ttl_ms),
            interval: Duration::from_millis(c.election_interval_ms),
            margin: Duration::from_millis(c.trust_margin_ms),
        }
    }
}

/// Beats until `leave` turns true, then leaves the cluster (its heartbeat row goes,
/// and the leadership is handed back at once if this node holds it). The first beat
/// runs before this returns, so a single node is the leader as soon as it serves.
pub async fn start(
    store: Arc<dyn Store>,
    leadership: Arc<Leadership>,
    election: Election,
    mut leave: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let first = beat(store.as_ref(), &leadership, &election).await;
    if let Err(e) = &first {
        tracing::warn!(error = %e, "first cluster heartbeat failed; retrying every interval");
    }
    tokio::spawn(async move {
        let mut next = tokio::time::Instant::now() + election.interval;
        let mut failing = first.is_err();
        loop {
            // Wake at the next beat, or when the trust window ends before it.
            let lapse = trust_end(&leadership).map(tokio::time::Instant::from_std);
            let wake = lapse.map_or(next, |l| l.min(next));
            tokio::select! {
                changed = leave.changed() => {
                    if changed.is_err() || *leave.borrow() {
                        break;
                    }
                    continue;
                }
                () = tokio::time::sleep_until(wake) => {}
            }
            leadership.lapse();
            if tokio::time::Instant::now() < next {
                continue;
            }
            next = tokio::time::Instant::now() + election.interval;
            match beat(store.as_ref(), &leadership, &election).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("cluster heartbeats reach the store again");
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cluster heartbeat failed; retrying every interval");
                }
                _ => {}
            }
        }
        let held = leadership.acting();
        leadership.trusted_until.store(0, Ordering::Release);
        match store.cluster_leave(&leadership.node, held).await {
            Ok(()) if held.is_some() => {
                tracing::info!(term = ?held, "handed the leadership back");
            }
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, "leaving the cluster failed; the leadership expires by itself")
            }
        }
    })
}

/// When this node's trust window ends, while it is acting.
fn trust_end(leadership: &Leadership) -> Option<Instant> {
    leadership.acting()?;
    let until = leadership.trusted_until.load(Ordering::Acquire);
    Some(leadership.base + Duration::from_nanos(until))
}

/// One beat, bounded by the interval.
async fn beat(
    store: &dyn Store,
    leadership: &Leadership,
    election: &Election,
) -> Result<(), String> {
    let started = Instant::now();
    let held = leadership.term.load(Ordering::Acquire);
    let beat = Beat {
        node: leadership.node.clone(),
        address: election.address.clone(),
        version: election.version.clone(),
        started_at: election.started_at,
        ttl_ms: u64::try_from(election.ttl.as_millis()).unwrap_or(u64::MAX),
        campaign: true,
        held: (held > 0).then_some(held),
    };
    let result = match tokio::time::timeout(election.interval, store.cluster_beat(beat)).await {
        Ok(Ok(state)) => {
            leadership.observe(&state, started, election.ttl, election.margin);
            return Ok(());
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} ms", election.interval.as_millis()),
    };
    leadership.lapse();
    Err(result)
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
