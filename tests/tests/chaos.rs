//! Chaos tests of the cluster (SPEC HA-1..3, REL-2): real `gp` processes on one
//! PostgreSQL schema, publishes spread over every node at a steady rate, and a node
//! killed (`kill -9`), paused past its leadership (SIGSTOP … SIGCONT) or cut off from
//! the database (every connection terminated, as a database restart does), or killed
//! and restarted and then rolled (each stopped and started in turn). Each test
//! checks that every acknowledged event is delivered, that no lease stays claimed,
//! that a leader that was paused does not act as leader again, and prints what it
//! measured (failover time, duplicates) for `docs/benchmarks.md`: nothing here
//! asserts a duration.
//!
//! Default election settings (`leader_ttl_ms` 5000, `election_interval_ms` 1000,
//! `trust_margin_ms` 1000) unless a test says otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatepulse_e2e::Gp;
use gatepulse_e2e::cluster::Cluster;
use gatepulse_e2e::receiver::{Behaviour, Receiver};
use gatepulse_e2e::sse::Sse;
use serde_json::{Value, json};

/// Publishes one event every `every` through the running nodes in turn (skipping the
/// ones that fail: a killed or paused node), until `stop`; returns the acknowledged
/// event ids.
struct Publisher {
    acked: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<u64>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    fn start(bases: Vec<String>, key: String, every: Duration) -> Self {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (a, r) = (acked.clone(), refused.clone());
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let mut tick = tokio::time::interval(every);
            let mut n = 0usize;
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tick.tick() => {}
                }
                let base = &bases[n % bases.len()];
                n += 1;
                let sent = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&key)
                    .json(&json!({"topic": "chaos.tick", "payload": {"n": n}}))
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status() == reqwest::StatusCode::ACCEPTED => {
                        let v: Value = resp.json().await.unwrap();
                        a.lock().unwrap().push(v["id"].as_str().unwrap().to_owned());
                    }
                    _ => *r.lock().unwrap() += 1,
                }
            }
        });
        Self {
            acked,
            refused,
            stop,
            task,
        }
    }

    async fn finish(self) -> (Vec<String>, u64) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
        let acked = self.acked.lock().unwrap().clone();
        let refused = *self.refused.lock().unwrap();
        (acked, refused)
    }
}

/// A tenant with an endpoint at `receiver` subscribed to `chaos.*`; returns the key.
async fn tenant(gp: &Gp, receiver: &Receiver) -> String {
    let (_, key) = gp.tenant_with_key().await.unwrap();
    gp.subscribe(
        &key,
        json!({"url": receiver.url(), "max_in_flight": 16}),
        &["chaos.*"],
        None,
    )
    .await
    .unwrap();
    key
}

/// Waits until every acknowledged event reached the receiver; returns the
/// duplicates (requests beyond one per event).
async fn all_delivered(receiver: &Receiver, acked: &[String]) -> usize {
    let want: HashSet<&str> = acked.iter().map(String::as_str).collect();
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let (got, requests) = receiver.with_log(|log| {
            let got: HashSet<String> = log
                .requests
                .iter()
                .filter(|r| r.answered_2xx())
                .filter_map(|r| r.event_id().map(str::to_owned))
                .collect();
            (got, log.requests.len())
        });
        let missing = want.iter().filter(|id| !got.contains(**id)).count();
        if missing == 0 {
            return requests - got.len();
        }
        assert!(
            Instant::now() < end,
            "{missing} of {} acknowledged events not delivered within 90 s",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no delivery is leased (the reaper's interval is 5 s).
async fn no_leases_left(cluster: &Cluster, via: usize) {
    let end = Instant::now() + Duration::from_secs(60);
    while cluster.leases(via).await > 0 {
        assert!(
            Instant::now() < end,
            "leases still claimed after 60 s: {:?}",
            cluster.state(via).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The time from `since` to the first request after it that the receiver answered.
fn first_delivery_after(receiver: &Receiver, since: Instant) -> Option<Duration> {
    receiver.with_log(|log| {
        log.requests
            .iter()
            .filter(|r| r.received_at > since)
            .map(|r| r.received_at - since)
            .min()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_hands_delivery_to_another_node_and_loses_nothing() {
    let cluster = Cluster::start(3, &[]).await;
    let receiver = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let key = tenant(&cluster.nodes[0], &receiver).await;
    let (leader, term, _) = cluster.leader(0, None, 3).await;
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let publisher = Publisher::start(bases, key.clone(), Duration::from_millis(20));
    let other = (leader + 1) % 3;
    // A stream that asked for leadership notices, on a node that survives.
    let http = gatepulse_e2e::sse::client().unwrap();
    let mut notices = Sse::connect(
        &http,
        &cluster.nodes[other].base,
        &key,
        "?topic=gatepulse.cluster",
        None,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut cluster = cluster;
    let killed_at = Instant::now();
    cluster.nodes[leader].kill9().unwrap();
    let (next, next_term, elected) = cluster.leader(other, Some(leader), 2).await;
    assert_ne!(next, leader);
    assert!(
        next_term > term,
        "terms only go up: {term} then {next_term}"
    );
    loop {
        let frame = notices
            .next_within(Duration::from_secs(30))
            .await
            .unwrap()
            .expect("a gatepulse.cluster notice after the failover");
        assert_eq!(frame.event, "gatepulse.cluster");
        assert!(frame.id.is_none(), "a notice has no cursor: {frame:?}");
        let v = frame.json().unwrap();
        assert_eq!(v["node"], format!("n{other}"));
        if v["term"] == next_term {
            assert_eq!(v["leader"], format!("n{next}"));
            break;
        }
    }
    // Let publishes go on under the new leader, then stop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acked, refused) = publisher.finish().await;
    let dups = all_delivered(&receiver, &acked).await;
    let resumed = first_delivery_after(&receiver, killed_at + Duration::from_millis(500));
    no_leases_left(&cluster, next).await;
    eprintln!(
        "chaos kill -9 leader: elected after {:?}, deliveries resumed after {:?} (from the kill), \
         {} acknowledged, {refused} refused while the leader died, {dups} duplicates",
        elected - killed_at,
        resumed.map(|d| d + Duration::from_millis(500)),
        acked.len(),
    );
    let log = cluster.log(next);
    assert!(
        log.contains("this node is the leader"),
        "the new leader said so:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_paused_past_its_leadership_does_not_act_as_leader_when_resumed() {
    let cluster = Cluster::start(2, &[]).await;
    let receiver = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let key = tenant(&cluster.nodes[0], &receiver).await;
    let (leader, term, _) = cluster.leader(0, None, 2).await;
    let other = 1 - leader;
    let bases = vec![cluster.nodes[other].base.clone()];
    let publisher = Publisher::start(bases.clone(), key.clone(), Duration::from_millis(20));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let paused_at = Instant::now();
    cluster.nodes[leader].signal("STOP").unwrap();
    let (next, next_term, elected) = cluster.leader(other, Some(leader), 1).await;
    assert_eq!(next, other);
    assert!(next_term > term);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.nodes[leader].signal("CONT").unwrap();
    let resumed_at = Instant::now();
    // It answers again, and sees itself as a follower of the new term.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = cluster.state(leader).await
            && v["leader"]["id"] == format!("n{other}")
        {
            assert_eq!(v["self"], format!("n{leader}"));
            break;
        }
        assert!(
            Instant::now() < end,
            "the resumed node never saw the new leader"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Whatever it had in flight when paused has finished by now; from here on it must
    // not claim anything, while publishes go on.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let attempts_before = attempts(&cluster.nodes[leader]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acked, _) = publisher.finish().await;
    let dups = all_delivered(&receiver, &acked).await;
    let attempts_after = attempts(&cluster.nodes[leader]).await;
    assert_eq!(
        attempts_before, attempts_after,
        "the resumed former leader made delivery attempts"
    );
    let metrics = cluster.nodes[leader].metrics().await.unwrap();
    assert!(metrics.contains("gatepulse_cluster_leader 0"), "{metrics}");
    no_leases_left(&cluster, other).await;
    let log = cluster.log(leader);
    assert!(
        log.contains("no longer"),
        "the paused leader logged that it stepped down:\n{log}"
    );
    eprintln!(
        "chaos SIGSTOP leader: new leader after {:?}, resumed {:?} after the pause, {} acknowledged, {dups} duplicates",
        elected - paused_at,
        resumed_at - paused_at,
        acked.len()
    );
}

/// Delivery attempts a node made (its `gatepulse_delivery_attempts_total`, all labels).
async fn attempts(gp: &Gp) -> f64 {
    let text = gp.metrics().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("gatepulse_delivery_attempts_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_active_active_worker_killed_mid_send_loses_nothing() {
    let cluster = Cluster::start(3, &[("GATEPULSE_CLUSTER__MODE", "active-active")]).await;
    // Slow answers keep sends in flight on every node when one is killed.
    let receiver = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let key = tenant(&cluster.nodes[0], &receiver).await;
    let (leader, _, _) = cluster.leader(0, None, 3).await;
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let publisher = Publisher::start(bases, key, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Every node dispatches: more than one made attempts.
    let mut dispatching = 0;
    for n in &cluster.nodes {
        if attempts(n).await > 0.0 {
            dispatching += 1;
        }
    }
    assert!(
        dispatching >= 2,
        "active-active, yet only {dispatching} node(s) made attempts"
    );
    let victim = (leader + 1) % 3;
    let mut cluster = cluster;
    cluster.nodes[victim].kill9().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acked, refused) = publisher.finish().await;
    let dups = all_delivered(&receiver, &acked).await;
    no_leases_left(&cluster, leader).await;
    eprintln!(
        "chaos active-active worker kill -9: {} acknowledged, {refused} refused, {dups} duplicates",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_reconnect_by_themselves_when_the_database_drops_them_under_load() {
    let cluster = Cluster::start(2, &[]).await;
    let receiver = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let key = tenant(&cluster.nodes[0], &receiver).await;
    cluster.leader(0, None, 2).await;
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let publisher = Publisher::start(bases, key, Duration::from_millis(20));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut cut = 0;
    for _ in 0..3 {
        cut += cluster.cut_database().await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(cut > 0, "no connection of the nodes was found");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acked, refused) = publisher.finish().await;
    let dups = all_delivered(&receiver, &acked).await;
    // Both ready again, a leader elected, nothing left leased.
    for n in &cluster.nodes {
        let s = n
            .http
            .get(format!("{}/readyz", n.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, reqwest::StatusCode::OK);
    }
    let (leader, _, _) = cluster.leader(0, None, 2).await;
    no_leases_left(&cluster, leader).await;
    eprintln!(
        "chaos database connections cut 3 times ({cut} connections): {} acknowledged, {refused} refused, {dups} duplicates",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_killed_restarted_and_rolled_in_turn_lose_nothing() {
    let mut cluster = Cluster::start(3, &[]).await;
    let receiver = Receiver::start(Behaviour::Ok, None).await.unwrap();
    let key = tenant(&cluster.nodes[0], &receiver).await;
    let (leader, term, _) = cluster.leader(0, None, 3).await;
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let publisher = Publisher::start(bases, key, Duration::from_millis(20));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The leader dies and comes straight back under its id: its row names it, so it
    // takes a new term at once (its previous run is gone) instead of waiting.
    cluster.nodes[leader].kill9().unwrap();
    cluster.nodes[leader].restart().await.unwrap();
    let other = (leader + 1) % 3;
    let end = Instant::now() + Duration::from_secs(60);
    let term_after_restart = loop {
        let v = cluster.state(other).await.unwrap();
        if let Some(t) = v["leader"]["term"].as_u64()
            && t > term
        {
            break t;
        }
        assert!(Instant::now() < end, "no new term after the restart: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A rolling restart: each node stopped (SIGTERM) and started again in turn. A
    // leader that stops hands the leadership back; each time someone leads again.
    for i in 0..3 {
        assert_eq!(
            cluster.nodes[i].terminate().unwrap(),
            0,
            "node {i} stopped cleanly"
        );
        let via = (i + 1) % 3;
        cluster.leader(via, None, 2).await;
        cluster.nodes[i].restart().await.unwrap();
    }
    let (_, last_term, _) = cluster.leader(0, None, 3).await;
    assert!(last_term >= term_after_restart);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (acked, refused) = publisher.finish().await;
    let dups = all_delivered(&receiver, &acked).await;
    no_leases_left(&cluster, 0).await;
    eprintln!(
        "chaos restarts: leader killed and restarted, then a rolling restart of 3 nodes: terms {term} → {last_term}, \
         {} acknowledged, {refused} refused (sent to a stopped node), {dups} duplicates",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_circuit_stays_open_when_the_leader_changes() {
    let env = [
        ("GATEPULSE_DELIVERY__CIRCUIT_FAILURE_THRESHOLD", "3"),
        ("GATEPULSE_DELIVERY__CIRCUIT_COOLDOWN_SECS", "120"),
        ("GATEPULSE_DELIVERY__CIRCUIT_MAX_COOLDOWN_SECS", "120"),
    ];
    let mut cluster = Cluster::start(2, &env).await;
    let receiver = Receiver::start(Behaviour::Status(500), None).await.unwrap();
    let (leader, _, _) = cluster.leader(0, None, 2).await;
    let other = 1 - leader;
    let key = tenant(&cluster.nodes[other], &receiver).await;
    for i in 0..5 {
        cluster.nodes[other]
            .publish(&key, "chaos.fail", &json!({"i": i}))
            .await
            .unwrap();
    }
    // The leader's breaker opens after three failures; the follower sees it.
    let (_, eps) = cluster.nodes[other]
        .call(&key, reqwest::Method::GET, "/v1/endpoints", None)
        .await
        .unwrap();
    let ep = eps["data"][0]["id"].as_str().unwrap().to_owned();
    let end = Instant::now() + Duration::from_secs(30);
    while health(&cluster.nodes[other], &key, &ep).await["circuit"] != "open" {
        assert!(
            Instant::now() < end,
            "the circuit never opened: {}",
            health(&cluster.nodes[other], &key, &ep).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the leader share its last report, then kill it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let attempts_before = receiver.count();
    cluster.nodes[leader].kill9().unwrap();
    cluster.leader(other, Some(leader), 1).await;
    // The new leader takes the open circuit over: new events wait instead of being
    // sent to the failing endpoint at once.
    for i in 0..5 {
        cluster.nodes[other]
            .publish(&key, "chaos.fail", &json!({"after": i}))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        receiver.count(),
        attempts_before,
        "the new leader sent to an endpoint whose circuit was open"
    );
    assert_eq!(
        health(&cluster.nodes[other], &key, &ep).await["circuit"],
        "open"
    );
    let log = cluster.log(other);
    assert!(log.contains("circuit carried over"), "{log}");
}

/// `GET /v1/endpoints/{ep}/health` on `gp`.
async fn health(gp: &Gp, key: &str, ep: &str) -> Value {
    gp.call(
        key,
        reqwest::Method::GET,
        &format!("/v1/endpoints/{ep}/health"),
        None,
    )
    .await
    .unwrap()
    .1
}
