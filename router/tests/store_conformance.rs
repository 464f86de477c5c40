//! The store conformance suite: every backend must pass every case here.
//!
//! Each case is an async function over a fresh `Arc<dyn Store>`; the
//! `conformance!` macro instantiates all of them for one backend factory. A new
//! backend adds one `conformance!` line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use gatepulse::ids::*;
use gatepulse::ingest::topic::TopicPattern;
use gatepulse::store::backends::postgres::{PgOptions, PgStore};
use gatepulse::store::backends::redb::{RedbOptions, RedbStore};
use gatepulse::store::feed::CommitFeed;
use gatepulse::store::*;
use serde_json::value::RawValue;

fn tenant(name: &str) -> Tenant {
    Tenant {
        record_version: RECORD_VERSION,
        id: TenantId::generate(1_700_000_000_000),
        name: name.into(),
        created_at: 1_700_000_000_000,
        retention: Default::default(),
    }
}

fn endpoint(t: &TenantId) -> Endpoint {
    Endpoint {
        record_version: RECORD_VERSION,
        id: EndpointId::generate(1_700_000_000_000),
        tenant_id: t.clone(),
        kind: EndpointKind::Http,
        url: Some("https://example.com/hook".into()),
        description: String::new(),
        secrets: vec![],
        signature_schemes: vec![SignatureScheme::V1],
        signing_keys: vec![],
        headers: BTreeMap::new(),
        timeout_ms: None,
        rate_limit_per_sec: None,
        max_in_flight: None,
        retry_schedule_secs: None,
        enabled: true,
        disabled_reason: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn subscription(t: &TenantId, e: &EndpointId) -> Subscription {
    Subscription {
        record_version: RECORD_VERSION,
        id: SubscriptionId::generate(1_700_000_000_000),
        tenant_id: t.clone(),
        endpoint_id: e.clone(),
        topics: vec!["orders.*".into()],
        filter: None,
        transform: None,
        enabled: true,
        created_at: 1,
        updated_at: 1,
    }
}

/// The trace context every test event carries (kept with the event, handed back with
/// every claim: the parent of its attempts' spans).
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn new_event(
    t: &TenantId,
    key: Option<&str>,
    at: i64,
    subs: &[(SubscriptionId, EndpointId)],
) -> NewEvent {
    let id = EventId::generate(at);
    NewEvent {
        id: id.clone(),
        tenant_id: t.clone(),
        topic: "orders.created".into(),
        payload: RawValue::from_string(r#"{"amount":42,"name":"é"}"#.into()).unwrap(),
        idempotency_key: key.map(str::to_owned),
        created_at: at,
        traceparent: Some(TRACEPARENT.into()),
        deliveries: subs
            .iter()
            .enumerate()
            .map(|(i, (s, e))| NewDelivery {
                id: DeliveryId::for_event(&id, i as u32),
                subscription_id: s.clone(),
                endpoint_id: e.clone(),
            })
            .collect(),
    }
}

/// One requeue batch without a queue limit.
fn requeue(selection: RequeueSelection, now: i64, limit: usize) -> RequeueBatch {
    RequeueBatch {
        selection,
        after: None,
        now,
        limit,
        max_queue_depth: u64::MAX,
    }
}

/// Appends with no queue limit; every event must be stored.
async fn append(store: &dyn Store, events: Vec<NewEvent>, window_ms: i64) -> Vec<AppendOutcome> {
    let limits = AppendLimits {
        idempotency_window_ms: window_ms,
        max_queue_depth: u64::MAX,
    };
    store
        .append_events(events, limits)
        .await
        .unwrap()
        .into_iter()
        .map(|a| match a {
            Appended::Stored(o) => o,
            other => panic!("refused: {other:?}"),
        })
        .collect()
}

fn page(limit: usize) -> PageRequest {
    PageRequest { after: None, limit }
}

async fn tenants_list_in_pages(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let t = tenant(&format!("t{i}"));
        ids.push(t.id.clone());
        store.create_tenant(t).await.unwrap();
    }
    ids.sort();
    let first = store.list_tenants(page(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    let rest = store
        .list_tenants(PageRequest {
            after: first.next.clone(),
            limit: 3,
        })
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    assert_eq!(rest.next, None);
    let listed: Vec<_> = first
        .items
        .iter()
        .chain(&rest.items)
        .map(|t| t.id.clone())
        .collect();
    assert_eq!(listed, ids);
    assert_eq!(store.get_tenant(&ids[0]).await.unwrap().unwrap().id, ids[0]);
    assert!(
        store
            .get_tenant(&TenantId::generate(5))
            .await
            .unwrap()
            .is_none()
    );
}

async fn api_keys_are_found_by_hash_until_revoked(store: Arc<dyn Store>) {
    let t = tenant("a");
    store.create_tenant(t.clone()).await.unwrap();
    let key = ApiKey {
        record_version: RECORD_VERSION,
        id: KeyId::generate(1),
        tenant_id: t.id.clone(),
        name: "ci".into(),
        scopes: vec![gatepulse::auth::Scope::EventsWrite],
        hash: "ab".repeat(32),
        created_at: 1,
        revoked_at: None,
        expires_at: None,
    };
    store.create_api_key(key.clone()).await.unwrap();
    assert_eq!(
        store.find_api_key(&key.hash).await.unwrap().unwrap().id,
        key.id
    );
    let revoked = store
        .revoke_api_key(&t.id, &key.id, 99)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(99));
    assert!(store.find_api_key(&key.hash).await.unwrap().is_none());
    // Idempotent, and listed with its revocation time.
    assert_eq!(
        store
            .revoke_api_key(&t.id, &key.id, 100)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(99)
    );
    let keys = store.list_api_keys(&t.id, page(10)).await.unwrap();
    assert_eq!(keys.items.len(), 1);
    // A key for an unknown tenant is refused.
    let mut orphan = key.clone();
    orphan.tenant_id = TenantId::generate(1);
    orphan.id = KeyId::generate(2);
    assert!(matches!(
        store.create_api_key(orphan).await,
        Err(StoreError::MissingReference("tenant"))
    ));
}

/// An endpoint's `record_version` says how its header values are sealed (the
/// `secrets` module decides it): the store keeps what a write gives it, and the
/// sealed values themselves, byte for byte.
async fn endpoint_writes_keep_their_record_version_and_sealed_values(store: Arc<dyn Store>) {
    let t = tenant("sealed");
    store.create_tenant(t.clone()).await.unwrap();
    let mut ep = endpoint(&t.id);
    ep.record_version = 1;
    ep.headers
        .insert("Authorization".into(), "plain-before".into());
    store.create_endpoint(ep.clone(), 10).await.unwrap();
    let got = store.get_endpoint(&t.id, &ep.id).await.unwrap().unwrap();
    assert_eq!(got.record_version, 1);
    let sealed = "AQAAAAKqqqqqqqqqqqqqqqq=".to_owned();
    let value = sealed.clone();
    let updated = store
        .update_endpoint(
            &t.id,
            &ep.id,
            Box::new(move |e| {
                e.headers.insert("Authorization".into(), value);
                e.record_version = 2;
            }),
        )
        .await
        .unwrap();
    assert_eq!(updated.record_version, 2);
    let got = store.get_endpoint(&t.id, &ep.id).await.unwrap().unwrap();
    assert_eq!(got.record_version, 2);
    assert_eq!(got.headers["Authorization"], sealed);
    // A write that does not touch it leaves it as it is.
    let again = store
        .update_endpoint(&t.id, &ep.id, Box::new(|e| e.description = "x".into()))
        .await
        .unwrap();
    assert_eq!(again.record_version, 2);
}

/// Audit records chain per tenant in append order; listing filters and pages;
/// retention removes each chain's oldest records and what stays still verifies.
async fn audit_records_chain_list_and_expire(store: Arc<dyn Store>) {
    use gatepulse::audit::{AuditActor, AuditEntry, AuditResource, verify_chain};
    let (a, b) = (tenant("audit-a"), tenant("audit-b"));
    let entry = |t: Option<&TenantId>, at: i64, action: &str| AuditEntry {
        tenant: t.cloned(),
        at,
        actor: AuditActor::admin(),
        action: action.into(),
        resource: AuditResource::new("endpoint", format!("ep_{at}")),
        request_id: None,
        client_addr: None,
        details: serde_json::json!({"at": at}),
    };
    for at in 1..=4 {
        let r = store
            .append_audit(entry(Some(&a.id), at, "endpoint.create"))
            .await
            .unwrap();
        assert_eq!(r.seq, at as u64);
    }
    store
        .append_audit(entry(Some(&b.id), 2, "endpoint.delete"))
        .await
        .unwrap();
    store
        .append_audit(entry(None, 3, "store.snapshot"))
        .await
        .unwrap();
    let chain = store.audit_chain(a.id.as_str(), 0, 100).await.unwrap();
    assert_eq!(chain.len(), 4);
    assert_eq!(chain[1].prev_hash, chain[0].hash);
    assert_eq!(verify_chain(&chain), None);
    let mut chains = store.audit_chains().await.unwrap();
    chains.sort();
    let mut want = vec![String::new(), a.id.to_string(), b.id.to_string()];
    want.sort();
    assert_eq!(chains, want);

    let page =
        |tenant: Option<&TenantId>, action: Option<&str>, after: Option<String>| AuditQuery {
            tenant: tenant.cloned(),
            action: action.map(str::to_owned),
            page: PageRequest { after, limit: 3 },
            ..AuditQuery::default()
        };
    let all = store.list_audit(page(None, None, None)).await.unwrap();
    assert_eq!(all.items.len(), 3);
    let rest = store
        .list_audit(page(None, None, all.next.clone()))
        .await
        .unwrap();
    assert_eq!(all.items.len() + rest.items.len(), 6, "{:?}", rest.items);
    let only_b = store
        .list_audit(page(Some(&b.id), None, None))
        .await
        .unwrap();
    assert_eq!(only_b.items.len(), 1);
    assert_eq!(only_b.items[0].action, "endpoint.delete");
    let deletes = store
        .list_audit(page(None, Some("endpoint.delete"), None))
        .await
        .unwrap();
    assert_eq!(deletes.items.len(), 1);

    // Older than 3 ms: a's first two, b's one.
    assert_eq!(store.purge_audit(3, 100).await.unwrap(), 3);
    let kept = store.audit_chain(a.id.as_str(), 0, 100).await.unwrap();
    assert_eq!(kept.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(verify_chain(&kept), None);
    // The chain goes on from its head.
    let next = store
        .append_audit(entry(Some(&a.id), 5, "endpoint.update"))
        .await
        .unwrap();
    assert_eq!(
        (next.seq, next.prev_hash.as_str()),
        (5, kept[1].hash.as_str())
    );
}

/// A request's pending audit record commits with the write that takes it, or not at
/// all: a refused write leaves none (and the intent is gone), the next write is not
/// recorded twice.
async fn audit_records_commit_with_their_change_or_not_at_all(store: Arc<dyn Store>) {
    use gatepulse::audit::{self, AuditActor, Context};
    let t = tenant("audited");
    store.create_tenant(t.clone()).await.unwrap();
    let ctx = Context::new(
        AuditActor::admin(),
        Some(axum::http::HeaderValue::from_static("req_1")),
        None,
    );
    let store2 = store.clone();
    let tid = t.id.clone();
    audit::scope(ctx, async move {
        // Refused: the endpoint does not exist.
        let orphan = subscription(&tid, &EndpointId::generate(9));
        audit::record(
            Some(&tid),
            "subscription.create",
            "subscription",
            &orphan.id,
            serde_json::json!({}),
        );
        assert!(store2.create_subscription(orphan, 10).await.is_err());
        // Accepted, and recorded once.
        let ep = endpoint(&tid);
        audit::record(
            Some(&tid),
            "endpoint.create",
            "endpoint",
            &ep.id,
            serde_json::json!({}),
        );
        store2.create_endpoint(ep.clone(), 10).await.unwrap();
        store2
            .update_endpoint(&tid, &ep.id, Box::new(|e| e.description = "x".into()))
            .await
            .unwrap();
    })
    .await;
    let records = store.audit_chain(t.id.as_str(), 0, 100).await.unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["endpoint.create"]);
    assert_eq!(records[0].request_id.as_deref(), Some("req_1"));
}

async fn endpoints_are_tenant_scoped_limited_and_cascade(store: Arc<dyn Store>) {
    let (a, b) = (tenant("a"), tenant("b"));
    store.create_tenant(a.clone()).await.unwrap();
    store.create_tenant(b.clone()).await.unwrap();
    let ep = endpoint(&a.id);
    store.create_endpoint(ep.clone(), 2).await.unwrap();
    assert!(store.get_endpoint(&a.id, &ep.id).await.unwrap().is_some());
    assert!(
        store.get_endpoint(&b.id, &ep.id).await.unwrap().is_none(),
        "other tenant sees nothing"
    );
    store.create_endpoint(endpoint(&a.id), 2).await.unwrap();
    assert!(matches!(
        store.create_endpoint(endpoint(&a.id), 2).await,
        Err(StoreError::LimitReached { .. })
    ));
    let updated = store
        .update_endpoint(
            &a.id,
            &ep.id,
            Box::new(|e| {
                e.description = "changed".into();
                e.id = EndpointId::generate(5); // ignored: ids are immutable
            }),
        )
        .await
        .unwrap();
    assert_eq!(updated.id, ep.id);
    assert_eq!(updated.description, "changed");
    assert!(matches!(
        store.update_endpoint(&b.id, &ep.id, Box::new(|_| {})).await,
        Err(StoreError::NotFound(_))
    ));
    let sub = subscription(&a.id, &ep.id);
    store.create_subscription(sub.clone(), 10).await.unwrap();
    let deleted = store.delete_endpoint(&a.id, &ep.id).await.unwrap();
    assert_eq!(deleted, vec![sub.id.clone()]);
    assert!(
        store
            .get_subscription(&a.id, &sub.id)
            .await
            .unwrap()
            .is_none()
    );
    // Room again after the delete.
    store.create_endpoint(endpoint(&a.id), 2).await.unwrap();
    assert!(matches!(
        store.delete_endpoint(&a.id, &ep.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn subscriptions_need_their_endpoint(store: Arc<dyn Store>) {
    let a = tenant("a");
    store.create_tenant(a.clone()).await.unwrap();
    let ep = endpoint(&a.id);
    store.create_endpoint(ep.clone(), 10).await.unwrap();
    let missing = subscription(&a.id, &EndpointId::generate(1));
    assert!(matches!(
        store.create_subscription(missing, 10).await,
        Err(StoreError::MissingReference("endpoint"))
    ));
    let sub = subscription(&a.id, &ep.id);
    store.create_subscription(sub.clone(), 10).await.unwrap();
    let bad = EndpointId::generate(2);
    assert!(matches!(
        store
            .update_subscription(&a.id, &sub.id, Box::new(move |s| s.endpoint_id = bad))
            .await,
        Err(StoreError::MissingReference("endpoint"))
    ));
    let s = store
        .update_subscription(&a.id, &sub.id, Box::new(|s| s.topics = vec!["x.#".into()]))
        .await
        .unwrap();
    assert_eq!(s.topics, vec!["x.#".to_owned()]);
    assert_eq!(store.all_subscriptions(&a.id).await.unwrap().len(), 1);
    let by_ep = store
        .list_subscriptions(&a.id, Some(&ep.id), page(10))
        .await
        .unwrap();
    assert_eq!(by_ep.items.len(), 1);
    store.delete_subscription(&a.id, &sub.id).await.unwrap();
    assert!(matches!(
        store.delete_subscription(&a.id, &sub.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn appended_events_get_gapless_cursors_per_tenant(store: Arc<dyn Store>) {
    let (a, b) = (tenant("a"), tenant("b"));
    store.create_tenant(a.clone()).await.unwrap();
    store.create_tenant(b.clone()).await.unwrap();
    // Many concurrent appends, interleaving two tenants.
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = store.clone();
        let t = if i % 3 == 0 {
            b.id.clone()
        } else {
            a.id.clone()
        };
        tasks.push(tokio::spawn(async move {
            let evs = vec![
                new_event(&t, None, 1_000 + i, &[]),
                new_event(&t, None, 1_000 + i, &[]),
            ];
            (t, append(&*store, evs, 1000).await)
        }));
    }
    let mut cursors: BTreeMap<TenantId, Vec<u64>> = BTreeMap::new();
    for task in tasks {
        let (t, outs) = task.await.unwrap();
        assert_eq!(
            outs[1].cursor,
            outs[0].cursor + 1,
            "one call's events are consecutive"
        );
        cursors
            .entry(t)
            .or_default()
            .extend(outs.iter().map(|o| o.cursor));
    }
    for (t, mut cs) in cursors {
        cs.sort_unstable();
        let n = cs.len() as u64;
        assert_eq!(cs, (1..=n).collect::<Vec<_>>());
        assert_eq!(store.head_cursor(&t).await.unwrap(), n);
        // Listing walks the stream in order, across pages.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let p = store
                .list_events(
                    &t,
                    EventQuery {
                        page: PageRequest { after, limit: 7 },
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            seen.extend(p.items.iter().map(|e| e.cursor));
            match p.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, (1..=n).collect::<Vec<_>>());
    }
}

async fn idempotency_keys_dedupe_within_the_window(store: Arc<dyn Store>) {
    let a = tenant("a");
    let b = tenant("b");
    store.create_tenant(a.clone()).await.unwrap();
    store.create_tenant(b.clone()).await.unwrap();
    let first = append(
        &*store,
        vec![new_event(&a.id, Some("k1"), 10_000, &[])],
        5_000,
    )
    .await;
    assert!(!first[0].deduped);
    // Same key in one call and in a later call: the original answers.
    let again = append(
        &*store,
        vec![
            new_event(&a.id, Some("k1"), 12_000, &[]),
            new_event(&a.id, Some("k2"), 12_000, &[]),
            new_event(&a.id, Some("k2"), 12_000, &[]),
        ],
        5_000,
    )
    .await;
    assert_eq!(
        again[0],
        AppendOutcome {
            id: first[0].id.clone(),
            cursor: first[0].cursor,
            deduped: true
        }
    );
    assert!(!again[1].deduped);
    assert!(again[2].deduped);
    assert_eq!(again[2].id, again[1].id);
    // Another tenant's identical key is its own.
    let other = append(
        &*store,
        vec![new_event(&b.id, Some("k1"), 12_000, &[])],
        5_000,
    )
    .await;
    assert!(!other[0].deduped);
    // After the window the key is free again.
    let later = append(
        &*store,
        vec![new_event(&a.id, Some("k1"), 16_000, &[])],
        5_000,
    )
    .await;
    assert!(!later[0].deduped);
    assert_ne!(later[0].id, first[0].id);
    assert_eq!(store.head_cursor(&a.id).await.unwrap(), 3);
}

async fn events_are_stored_with_pending_deliveries(store: Arc<dyn Store>) {
    let a = tenant("a");
    let b = tenant("b");
    store.create_tenant(a.clone()).await.unwrap();
    store.create_tenant(b.clone()).await.unwrap();
    let ep = endpoint(&a.id);
    store.create_endpoint(ep.clone(), 10).await.unwrap();
    let s1 = subscription(&a.id, &ep.id);
    let s2 = subscription(&a.id, &ep.id);
    let subs = [
        (s1.id.clone(), ep.id.clone()),
        (s2.id.clone(), ep.id.clone()),
    ];
    let ev = new_event(&a.id, None, 5_000, &subs);
    let id = ev.id.clone();
    append(
        &*store,
        vec![ev, new_event(&a.id, None, 6_000, &subs[..1])],
        1,
    )
    .await;

    let got = store.get_event(&a.id, &id).await.unwrap().unwrap();
    assert_eq!(
        got.payload.get(),
        r#"{"amount":42,"name":"é"}"#,
        "payload kept byte for byte"
    );
    assert_eq!(got.traceparent.as_deref(), Some(TRACEPARENT));
    assert!(store.get_event(&b.id, &id).await.unwrap().is_none());

    let q = DeliveryQuery {
        event_id: Some(id.clone()),
        page: page(10),
        ..Default::default()
    };
    let ds = store.list_deliveries(&a.id, q).await.unwrap();
    assert_eq!(ds.items.len(), 2);
    for d in &ds.items {
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(d.event_id, id);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.lease_until, None);
        assert!(store.get_delivery(&a.id, &d.id).await.unwrap().is_some());
        assert!(store.get_delivery(&b.id, &d.id).await.unwrap().is_none());
        assert!(store.list_attempts(&a.id, &d.id).await.unwrap().is_empty());
    }
    let all = store
        .list_deliveries(
            &a.id,
            DeliveryQuery {
                page: page(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    assert!(all.next.is_some());
    assert_eq!(
        store.queued_endpoints().await.unwrap(),
        vec![(a.id.clone(), ep.id.clone())]
    );
    assert_eq!(store.next_due(&ep.id).await.unwrap(), Some(5_000));
    let counts = store.queue_counts(Some(&a.id)).await.unwrap();
    assert_eq!(counts.pending, 3);
    assert_eq!(store.queue_counts(Some(&b.id)).await.unwrap().pending, 0);
    assert_eq!(store.queue_counts(None).await.unwrap().pending, 3);
}

fn claim(t: &TenantId, e: &EndpointId, now: i64, limit: usize) -> Claim {
    Claim {
        node: "n1".into(),
        tenant: t.clone(),
        endpoint: e.clone(),
        now,
        lease_until: now + 10_000,
        limit,
        fence: None,
    }
}

fn beat(node: &str, ttl_ms: u64, held: Option<u64>) -> Beat {
    Beat {
        node: node.into(),
        address: format!("{node}:8080"),
        version: "test".into(),
        started_at: 1_000,
        ttl_ms,
        campaign: true,
        held,
    }
}

/// A node that beats is listed, leads (alone, or as the first to bid), and shows
/// its leases; after it leaves it is no longer listed.
async fn a_beating_node_is_listed_and_leads(store: Arc<dyn Store>) {
    let (t, e1, _) = two_endpoint_queue(&store, 2).await;
    let won = store.cluster_beat(beat("n1", 5_000, None)).await.unwrap();
    assert!(won.held, "{won:?}");
    assert_eq!(won.leader.as_deref(), Some("n1"));
    let term = won.term;
    assert!(term >= 1);
    let renewed = store
        .cluster_beat(beat("n1", 5_000, Some(term)))
        .await
        .unwrap();
    assert_eq!(renewed, won, "a renewal keeps the term");
    let fenced = Claim {
        fence: Some(term),
        ..claim(&t, &e1, 2_000, 10)
    };
    assert_eq!(
        store.claim_due(fenced).await.unwrap().len(),
        2,
        "the leader's fenced claim"
    );
    let state = store.cluster_state().await.unwrap();
    assert_eq!(
        state.leader.as_ref().map(|l| (l.node.as_str(), l.term)),
        Some(("n1", term))
    );
    let n1 = state.nodes.iter().find(|n| n.id == "n1").unwrap();
    assert_eq!((n1.address.as_str(), n1.leases), ("n1:8080", 2));
    assert!(
        n1.last_heartbeat_at > 0 && n1.last_heartbeat_at <= state.now + 1,
        "{state:?}"
    );
    assert_eq!(
        store.reclaim_foreign_leases("n1", None).await.unwrap(),
        0,
        "its own leases stay"
    );
    store.cluster_leave("n1", Some(term)).await.unwrap();
    assert!(
        store
            .cluster_state()
            .await
            .unwrap()
            .nodes
            .iter()
            .all(|n| n.id != "n1" || n.leases > 0)
    );
}

/// The outcome of `d`'s first attempt, a 200 at 3,000, under its current lease.
fn first_attempt_succeeded(t: &TenantId, d: &Delivery) -> Outcome {
    Outcome {
        tenant: t.clone(),
        delivery: d.id.clone(),
        lease_token: d.lease_token,
        attempt: attempt(t, d, 1, 3_000, 200),
        next: NextState::Succeeded,
        body: None,
    }
}

fn attempt(t: &TenantId, d: &Delivery, number: u32, at: i64, code: u16) -> Attempt {
    Attempt {
        record_version: RECORD_VERSION,
        id: AttemptId::generate(at),
        delivery_id: d.id.clone(),
        tenant_id: t.clone(),
        number,
        started_at: at,
        status_code: Some(code),
        latency_ms: 3,
        response_excerpt: None,
        error_kind: None,
        sent: Some(SentRequest {
            timestamp: at / 1000,
            signature: format!("v1,sig{number}"),
            custom_headers: vec!["X-Token".into()],
        }),
    }
}

/// Two endpoints of one tenant with one subscription each, and `n` events to each.
async fn two_endpoint_queue(
    store: &Arc<dyn Store>,
    n: usize,
) -> (TenantId, EndpointId, EndpointId) {
    let a = tenant("a");
    store.create_tenant(a.clone()).await.unwrap();
    let (e1, e2) = (endpoint(&a.id), endpoint(&a.id));
    store.create_endpoint(e1.clone(), 10).await.unwrap();
    store.create_endpoint(e2.clone(), 10).await.unwrap();
    let (s1, s2) = (subscription(&a.id, &e1.id), subscription(&a.id, &e2.id));
    store.create_subscription(s1.clone(), 10).await.unwrap();
    store.create_subscription(s2.clone(), 10).await.unwrap();
    let evs = (0..n)
        .map(|i| {
            new_event(
                &a.id,
                None,
                1_000 + i as i64,
                &[
                    (s1.id.clone(), e1.id.clone()),
                    (s2.id.clone(), e2.id.clone()),
                ],
            )
        })
        .collect();
    append(&**store, evs, 1).await;
    (a.id, e1.id, e2.id)
}

async fn the_stream_interleaves_events_and_attempt_statuses(store: Arc<dyn Store>) {
    // Events 1..=3 (cursors 1..=3), then one attempt each at e1: statuses 4..=6.
    let (t, e1, _e2) = two_endpoint_queue(&store, 3).await;
    let claimed = store.claim_due(claim(&t, &e1, 2_000, 10)).await.unwrap();
    assert_eq!(claimed.len(), 3);
    for c in &claimed {
        assert_eq!(c.event.traceparent.as_deref(), Some(TRACEPARENT));
        let d = &c.delivery;
        let recorded = store
            .record_outcome(first_attempt_succeeded(&t, d))
            .await
            .unwrap();
        assert!(recorded);
    }
    let all = store.read_stream(&t, 0, 100, None, i64::MIN).await.unwrap();
    let cursors: Vec<u64> = all.items.iter().map(|i| i.cursor).collect();
    assert_eq!(cursors, (1..=6).collect::<Vec<_>>());
    assert_eq!((all.head, all.oldest, all.scanned_to), (6, Some(1), 6));
    let topics: Vec<&str> = all.items.iter().map(|i| &*i.topic).collect();
    assert_eq!(topics[3..], ["deliveries.status"; 3]);
    let frame = std::str::from_utf8(&all.items[3].frame).unwrap();
    assert!(
        frame.starts_with("id: 4\nevent: deliveries.status\ndata: {"),
        "{frame}"
    );
    assert!(frame.contains("\"status\":\"succeeded\""), "{frame}");

    // A page: examines at most `limit` positions after `after`.
    let page = store.read_stream(&t, 2, 3, None, i64::MIN).await.unwrap();
    assert_eq!(
        page.items.iter().map(|i| i.cursor).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert_eq!(page.scanned_to, 5);
    // A topic filter skips but still examines.
    let only = TopicPattern::parse("deliveries.status", 255).unwrap();
    let statuses = store
        .read_stream(&t, 0, 4, Some(&only), i64::MIN)
        .await
        .unwrap();
    assert_eq!(
        statuses.items.iter().map(|i| i.cursor).collect::<Vec<_>>(),
        [4]
    );
    assert_eq!(statuses.scanned_to, 4);
    // Items written before `min_created_at` are counted, not returned.
    let recent = store.read_stream(&t, 0, 100, None, 2_500).await.unwrap();
    assert_eq!(recent.too_old, 3);
    assert_eq!(recent.items.len(), 3);
    // Other tenants see nothing of it.
    let other = tenant("b");
    store.create_tenant(other.clone()).await.unwrap();
    let none = store
        .read_stream(&other.id, 0, 100, None, i64::MIN)
        .await
        .unwrap();
    assert!(none.items.is_empty());
    assert_eq!((none.head, none.oldest), (0, None));
}

async fn a_retried_delivery_keeps_its_transformed_body(store: Arc<dyn Store>) {
    let (t, e1, _e2) = two_endpoint_queue(&store, 1).await;
    let c = store.claim_due(claim(&t, &e1, 2_000, 10)).await.unwrap();
    let d = &c[0].delivery;
    assert_eq!(d.body, None);
    let kept = r#"{"mapped":true}"#.to_owned();
    let recorded = store
        .record_outcome(Outcome {
            tenant: t.clone(),
            delivery: d.id.clone(),
            lease_token: d.lease_token,
            attempt: attempt(&t, d, 1, 3_000, 500),
            next: NextState::Retry { at: 4_000 },
            body: Some(kept.clone()),
        })
        .await
        .unwrap();
    assert!(recorded);
    // The retry is claimed with the body of the first attempt.
    let again = store.claim_due(claim(&t, &e1, 5_000, 10)).await.unwrap();
    let d = &again[0].delivery;
    assert_eq!(d.body.as_deref(), Some(kept.as_str()));
    // A later outcome never replaces it.
    store
        .record_outcome(Outcome {
            tenant: t.clone(),
            delivery: d.id.clone(),
            lease_token: d.lease_token,
            attempt: attempt(&t, d, 2, 5_000, 500),
            next: NextState::Dead,
            body: Some("{}".into()),
        })
        .await
        .unwrap();
    let dead = store.get_delivery(&t, &d.id).await.unwrap().unwrap();
    assert_eq!(dead.body.as_deref(), Some(kept.as_str()));
    // A requeue starts over: the transform runs again.
    store
        .requeue_dead(
            &t,
            requeue(RequeueSelection::Ids(vec![d.id.clone()]), 6_000, 10),
        )
        .await
        .unwrap();
    let requeued = store.get_delivery(&t, &d.id).await.unwrap().unwrap();
    assert_eq!(requeued.body, None);
}

async fn claims_lease_one_endpoints_due_deliveries_in_order(store: Arc<dyn Store>) {
    let (t, e1, e2) = two_endpoint_queue(&store, 5).await;
    let first = store.claim_due(claim(&t, &e1, 1_002, 2)).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|c| c.delivery.endpoint_id == e1));
    assert_eq!(first[0].event.payload.get(), r#"{"amount":42,"name":"é"}"#);
    assert!(first[0].event.cursor >= 1);
    for c in &first {
        assert_eq!(c.delivery.status, DeliveryStatus::InFlight);
        assert_eq!(c.delivery.claimed_by.as_deref(), Some("n1"));
        assert_eq!(c.delivery.lease_token, 1);
    }
    // Only due ones: at 1_002, events created at 1_000..=1_002 are due (3); one is left.
    let rest = store.claim_due(claim(&t, &e1, 1_002, 10)).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(store.next_due(&e1).await.unwrap(), Some(1_003));
    // The other endpoint's queue is untouched.
    assert_eq!(
        store
            .claim_due(claim(&t, &e2, 9_999, 100))
            .await
            .unwrap()
            .len(),
        5
    );
    let counts = store.queue_counts(Some(&t)).await.unwrap();
    assert_eq!((counts.pending, counts.in_flight), (2, 8));
}

async fn outcomes_move_deliveries_through_retry_success_and_dead(store: Arc<dyn Store>) {
    let (t, e1, _) = two_endpoint_queue(&store, 3).await;
    let c = store.claim_due(claim(&t, &e1, 5_000, 3)).await.unwrap();
    let (d0, d1, d2) = (&c[0].delivery, &c[1].delivery, &c[2].delivery);
    let ok = |d: &Delivery, next| Outcome {
        tenant: t.clone(),
        delivery: d.id.clone(),
        lease_token: d.lease_token,
        attempt: attempt(&t, d, 1, 5_000, 500),
        next,
        body: None,
    };
    assert!(
        store
            .record_outcome(ok(d0, NextState::Succeeded))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_outcome(ok(d1, NextState::Retry { at: 60_000 }))
            .await
            .unwrap()
    );
    assert!(store.record_outcome(ok(d2, NextState::Dead)).await.unwrap());
    // A second outcome under the same (now released) lease is refused.
    assert!(!store.record_outcome(ok(d0, NextState::Dead)).await.unwrap());
    let got = |id: &DeliveryId| {
        let store = store.clone();
        let (t, id) = (t.clone(), id.clone());
        async move { store.get_delivery(&t, &id).await.unwrap().unwrap() }
    };
    assert_eq!(got(&d0.id).await.status, DeliveryStatus::Succeeded);
    let retrying = got(&d1.id).await;
    assert_eq!(
        (retrying.status, retrying.attempts, retrying.next_attempt_at),
        (DeliveryStatus::Retrying, 1, 60_000)
    );
    assert_eq!(got(&d2.id).await.status, DeliveryStatus::Dead);
    assert_eq!(store.list_attempts(&t, &d1.id).await.unwrap().len(), 1);
    // The retry is due again only at its time.
    assert!(
        store
            .claim_due(claim(&t, &e1, 59_999, 10))
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.claim_due(claim(&t, &e1, 60_000, 10)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery.lease_token, 2);
    // DLQ: listed, requeued with a fresh schedule, and listed no more.
    let dead = store.list_dead(&t, Some(&e1), page(10)).await.unwrap();
    assert_eq!(dead.items.len(), 1);
    let done = store
        .requeue_dead(
            &t,
            requeue(RequeueSelection::Endpoint(e1.clone()), 70_000, 100),
        )
        .await
        .unwrap();
    assert_eq!(done.woken, vec![(t.clone(), e1.clone())]);
    assert_eq!((done.next, done.queue_full), (None, false));
    assert!(
        store
            .list_dead(&t, None, page(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let requeued = got(&d2.id).await;
    assert_eq!(
        (requeued.status, requeued.attempts),
        (DeliveryStatus::Pending, 0)
    );
    let counts = store.queue_counts(Some(&t)).await.unwrap();
    assert_eq!((counts.dead, counts.in_flight), (0, 1));
}

async fn expired_leases_return_to_the_queue(store: Arc<dyn Store>) {
    let (t, e1, _) = two_endpoint_queue(&store, 2).await;
    let c = store.claim_due(claim(&t, &e1, 2_000, 10)).await.unwrap();
    assert_eq!(c.len(), 2);
    // Leases end at 12_000: nothing expires before.
    assert_eq!(store.reclaim_leases(Some(12_000)).await.unwrap(), 0);
    assert_eq!(store.reclaim_leases(Some(12_001)).await.unwrap(), 2);
    let back = store.claim_due(claim(&t, &e1, 12_001, 10)).await.unwrap();
    assert_eq!(back.len(), 2);
    assert!(back.iter().all(|c| c.delivery.lease_token == 2));
    // The stale holder cannot complete.
    let stale = Outcome {
        tenant: t.clone(),
        delivery: c[0].delivery.id.clone(),
        lease_token: c[0].delivery.lease_token,
        attempt: attempt(&t, &c[0].delivery, 1, 3_000, 200),
        next: NextState::Succeeded,
        body: None,
    };
    assert!(!store.record_outcome(stale).await.unwrap());
    assert_eq!(
        store.reclaim_leases(None).await.unwrap(),
        2,
        "None reclaims every lease"
    );
}

async fn a_restarting_node_returns_its_leases_whatever_their_end(store: Arc<dyn Store>) {
    let (t, e1, _) = two_endpoint_queue(&store, 2).await;
    let c = store.claim_due(claim(&t, &e1, 2_000, 10)).await.unwrap();
    assert_eq!(c.len(), 2);
    // Leased until 12,000, but node n1 is starting again: they come back now.
    assert_eq!(store.reclaim_node_leases("n1").await.unwrap(), 2);
    let back = store.claim_due(claim(&t, &e1, 2_001, 10)).await.unwrap();
    assert_eq!(back.len(), 2);
    assert!(back.iter().all(|c| c.delivery.lease_token == 2));
    assert_eq!(store.reclaim_node_leases("n1").await.unwrap(), 2);
    assert_eq!(store.reclaim_node_leases("n1").await.unwrap(), 0);
}

async fn replays_add_fresh_deliveries_to_old_events(store: Arc<dyn Store>) {
    let (t, e1, e2) = two_endpoint_queue(&store, 1).await;
    let ev = store
        .list_events(
            &t,
            EventQuery {
                page: page(1),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items
        .remove(0);
    let subs = store.all_subscriptions(&t).await.unwrap();
    let replay = Replay {
        record_version: RECORD_VERSION,
        id: "rpl_test".into(),
        tenant_id: t.clone(),
        created_at: 50_000,
        request: serde_json::json!({"event_id": ev.id}),
        deliveries: 2,
        complete: true,
        stopped: None,
    };
    let news: Vec<ReplayDelivery> = subs
        .iter()
        .map(|s| ReplayDelivery {
            event_id: ev.id.clone(),
            subscription_id: s.id.clone(),
            endpoint_id: s.endpoint_id.clone(),
        })
        .collect();
    let written = store
        .create_replay(replay.clone(), news.clone(), u64::MAX)
        .await
        .unwrap();
    assert_eq!(written, 2);
    store
        .create_replay(
            Replay {
                id: "rpl_test2".into(),
                ..replay
            },
            news,
            u64::MAX,
        )
        .await
        .unwrap();
    let q = DeliveryQuery {
        event_id: Some(ev.id.clone()),
        page: page(100),
        ..Default::default()
    };
    let ds = store.list_deliveries(&t, q).await.unwrap().items;
    assert_eq!(ds.len(), 6, "2 original + 2 per replay");
    let ids: std::collections::BTreeSet<_> = ds.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids.len(), 6, "every delivery id is new");
    for e in [&e1, &e2] {
        assert_eq!(
            store
                .claim_due(claim(&t, e, 50_000, 10))
                .await
                .unwrap()
                .len(),
            3
        );
    }
}

async fn the_queue_never_grows_past_its_limit(store: Arc<dyn Store>) {
    let a = tenant("a");
    store.create_tenant(a.clone()).await.unwrap();
    let ep = endpoint(&a.id);
    store.create_endpoint(ep.clone(), 10).await.unwrap();
    let (s1, s2) = (subscription(&a.id, &ep.id), subscription(&a.id, &ep.id));
    let two = [
        (s1.id.clone(), ep.id.clone()),
        (s2.id.clone(), ep.id.clone()),
    ];
    let limits = AppendLimits {
        idempotency_window_ms: 60_000,
        max_queue_depth: 3,
    };
    let out = store
        .append_events(
            vec![
                new_event(&a.id, Some("k"), 1, &two), // 2 deliveries: fits
                new_event(&a.id, None, 1, &two),      // would make 4: refused
                new_event(&a.id, None, 1, &two[..1]), // 3: fits
                new_event(&a.id, None, 1, &[]),       // no delivery: always fits
                new_event(&a.id, Some("k"), 1, &two), // deduped: adds nothing
            ],
            limits,
        )
        .await
        .unwrap();
    assert!(matches!(out[0], Appended::Stored(_)));
    assert_eq!(out[1], Appended::QueueFull { limit: 3 });
    assert!(matches!(out[2], Appended::Stored(_)));
    assert!(matches!(out[3], Appended::Stored(_)));
    assert!(matches!(&out[4], Appended::Stored(o) if o.deduped));
    let counts = store.queue_counts(Some(&a.id)).await.unwrap();
    assert_eq!(counts.pending, 3);
    // Cursors stay gapless around the refused event.
    assert_eq!(store.head_cursor(&a.id).await.unwrap(), 3);
    // Claimed (in flight) deliveries still count; finished ones free room.
    let c = store.claim_due(claim(&a.id, &ep.id, 10, 10)).await.unwrap();
    assert_eq!(c.len(), 3);
    let refused = store
        .append_events(vec![new_event(&a.id, None, 2, &two[..1])], limits)
        .await
        .unwrap();
    assert_eq!(refused[0], Appended::QueueFull { limit: 3 });
    let d = &c[0].delivery;
    let done = Outcome {
        tenant: a.id.clone(),
        delivery: d.id.clone(),
        lease_token: d.lease_token,
        attempt: attempt(&a.id, d, 1, 20, 200),
        next: NextState::Succeeded,
        body: None,
    };
    assert!(store.record_outcome(done).await.unwrap());
    let fits = store
        .append_events(vec![new_event(&a.id, None, 3, &two[..1])], limits)
        .await
        .unwrap();
    assert!(matches!(fits[0], Appended::Stored(_)));
}

/// Replays and requeues add deliveries too: they stop at the same queue limit, in
/// bounded batches, and an event's delivery ids never wrap around.
async fn replays_and_requeues_respect_the_queue_limit(store: Arc<dyn Store>) {
    let a = tenant("a");
    store.create_tenant(a.clone()).await.unwrap();
    let ep = endpoint(&a.id);
    store.create_endpoint(ep.clone(), 10).await.unwrap();
    let sub = subscription(&a.id, &ep.id);
    let one = [(sub.id.clone(), ep.id.clone())];
    let events: Vec<NewEvent> = (0..4)
        .map(|i| new_event(&a.id, None, 10 + i, &one))
        .collect();
    let ids: Vec<EventId> = events.iter().map(|e| e.id.clone()).collect();
    append(store.as_ref(), events, 60_000).await;
    // Every delivery dies: the queue is empty, the DLQ holds four.
    let c = store
        .claim_due(claim(&a.id, &ep.id, 100, 10))
        .await
        .unwrap();
    for cl in &c {
        let d = &cl.delivery;
        assert!(
            store
                .record_outcome(Outcome {
                    tenant: a.id.clone(),
                    delivery: d.id.clone(),
                    lease_token: d.lease_token,
                    attempt: attempt(&a.id, d, 1, 200, 500),
                    next: NextState::Dead,
                    body: None,
                })
                .await
                .unwrap()
        );
    }
    assert_eq!(store.queue_counts(Some(&a.id)).await.unwrap().dead, 4);
    // A requeue by endpoint in batches of one, under a limit of three queued.
    let mut batch = RequeueBatch {
        selection: RequeueSelection::Endpoint(ep.id.clone()),
        after: None,
        now: 300,
        limit: 1,
        max_queue_depth: 3,
    };
    let mut moved = 0;
    let stop = loop {
        let r = store.requeue_dead(&a.id, batch.clone()).await.unwrap();
        moved += r.woken.len();
        if r.queue_full || r.next.is_none() {
            break r;
        }
        batch.after = r.next;
    };
    assert!(stop.queue_full, "{stop:?}");
    assert_eq!(moved, 3);
    let counts = store.queue_counts(Some(&a.id)).await.unwrap();
    assert_eq!((counts.pending, counts.dead), (3, 1));
    // A replay batch writes only what fits under the limit.
    let replay = Replay {
        record_version: RECORD_VERSION,
        id: "rpl_limit".into(),
        tenant_id: a.id.clone(),
        created_at: 400,
        request: serde_json::json!({}),
        deliveries: 1,
        complete: false,
        stopped: None,
    };
    let again = |e: &EventId| ReplayDelivery {
        event_id: e.clone(),
        subscription_id: sub.id.clone(),
        endpoint_id: ep.id.clone(),
    };
    let refused = store
        .create_replay(replay.clone(), vec![again(&ids[0])], 3)
        .await
        .unwrap();
    assert_eq!(refused, 0);
    assert_eq!(store.queue_counts(Some(&a.id)).await.unwrap().pending, 3);
    let some = store
        .create_replay(
            replay.clone(),
            vec![again(&ids[0]), again(&ids[1]), again(&ids[2])],
            5,
        )
        .await
        .unwrap();
    assert_eq!(some, 2, "the first two fit");
    assert_eq!(store.queue_counts(Some(&a.id)).await.unwrap().pending, 5);
    // An event whose delivery ids are used up refuses more instead of wrapping.
    let full = new_event(&a.id, None, 500, &[]);
    let last = DeliveryId::for_event(&full.id, DeliveryId::MAX_SEQ);
    let full = NewEvent {
        deliveries: vec![NewDelivery {
            id: last,
            subscription_id: sub.id.clone(),
            endpoint_id: ep.id.clone(),
        }],
        ..full
    };
    let full_id = full.id.clone();
    append(store.as_ref(), vec![full], 60_000).await;
    let err = store
        .create_replay(replay, vec![again(&full_id)], u64::MAX)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LimitReached { .. }), "{err:?}");
}

async fn retention_removes_settled_expired_data_and_nothing_else(store: Arc<dyn Store>) {
    // Events at t=1000..=1004 to two endpoints (e1 gets one, e2 one, per event).
    let (t, e1, e2) = two_endpoint_queue(&store, 5).await;
    // Settle every e1 delivery and the first two e2 ones as succeeded, the third e2 one
    // as dead at t=9_000; e2's last two stay queued.
    let mut settled = store.claim_due(claim(&t, &e1, 2_000, 10)).await.unwrap();
    settled.extend(store.claim_due(claim(&t, &e2, 2_000, 3)).await.unwrap());
    for (i, c) in settled.iter().enumerate() {
        let d = &c.delivery;
        let next = if i == 7 {
            NextState::Dead
        } else {
            NextState::Succeeded
        };
        let outcome = Outcome {
            tenant: t.clone(),
            delivery: d.id.clone(),
            lease_token: d.lease_token,
            attempt: attempt(&t, d, 1, 9_000, 200),
            next,
            body: None,
        };
        assert!(store.record_outcome(outcome).await.unwrap());
    }
    // Everything is expired by age; the DLQ entry (dead at ~9 s) is not yet.
    // At now = 105 s: events older than 5 s go; dead ones 100 s after they died.
    let policy = PurgePolicy {
        now: 105_000,
        events_max_age_secs: 5,
        dlq_max_age_secs: 100,
        inbox_max_age_secs: 0,
        max_rows: 1_000,
        max_millis: 0,
    };
    let r = store.purge(policy, PurgeCursor::default()).await.unwrap();
    assert!(r.done);
    assert_eq!(
        r.events, 2,
        "events 0 and 1 are settled; event 2 has a young dead delivery"
    );
    assert_eq!((r.deliveries, r.attempts), (4, 4));
    let left = store
        .list_events(
            &t,
            EventQuery {
                page: page(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        left.items.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert_eq!(
        store
            .list_dead(&t, None, page(10))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // Once the dead one is old enough, event 2 goes; 3 and 4 wait for their queued
    // deliveries.
    let policy = PurgePolicy {
        dlq_max_age_secs: 5,
        ..policy
    };
    let r = store.purge(policy, PurgeCursor::default()).await.unwrap();
    assert_eq!(r.events, 1);
    assert!(
        store
            .list_dead(&t, None, page(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        store.head_cursor(&t).await.unwrap(),
        13,
        "cursors are not reused (5 events, 8 attempt statuses)"
    );
    let counts = store.queue_counts(Some(&t)).await.unwrap();
    assert_eq!((counts.pending, counts.dead), (2, 0));
    // A small row budget stops early and reports it.
    let (t2, e3, _) = two_endpoint_queue(&store, 1).await;
    let _ = (t2, e3);
    let tiny = PurgePolicy {
        max_rows: 1,
        ..policy
    };
    let r = store.purge(tiny, PurgeCursor::default()).await.unwrap();
    assert!(!r.done || r.events == 0);
    store.mark_compacted(123).await.unwrap();
    assert_eq!(store.meta().last_compaction_at, Some(123));
    let stats = store.storage_stats().await.unwrap();
    assert!(stats.tables.get("events").is_some_and(|n| *n >= 2));
}

/// One event's deliveries are listed from that event's range only, whatever cursor a
/// caller passes: a cursor below it cannot make the scan walk other deliveries.
async fn an_events_deliveries_stay_within_its_range(store: Arc<dyn Store>) {
    let (t, _, _) = two_endpoint_queue(&store, 3).await;
    let events = store
        .list_events(
            &t,
            EventQuery {
                page: page(10),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items;
    let last = &events[2];
    for after in [
        None,
        Some(String::new()),
        Some("dlv_".to_owned()),
        Some("a".to_owned()),
    ] {
        let q = DeliveryQuery {
            event_id: Some(last.id.clone()),
            page: PageRequest {
                after: after.clone(),
                limit: 10,
            },
            ..Default::default()
        };
        let ds = store.list_deliveries(&t, q).await.unwrap();
        assert_eq!(ds.items.len(), 2, "{after:?}");
        assert!(ds.items.iter().all(|d| d.event_id == last.id), "{after:?}");
    }
}

/// Runs one whole retention pass; returns the summed report.
async fn purge_pass(store: &dyn Store, policy: PurgePolicy) -> PurgeReport {
    let mut total = PurgeReport::default();
    let mut from = PurgeCursor::default();
    for _ in 0..100_000 {
        let r = store.purge(policy, from).await.unwrap();
        total.events += r.events;
        total.deliveries += r.deliveries;
        total.attempts += r.attempts;
        total.other += r.other;
        if r.done {
            total.done = true;
            return total;
        }
        from = r.next.expect("an unfinished pass says where it continues");
    }
    panic!("the pass never finished");
}

/// An event still being delivered is passed by: the settled events after it go, and
/// a stream reader below the removed ones is told (the watermark), not left with a
/// silent hole. Replay records and inbox messages past their age go too, in bounded
/// steps.
async fn retention_passes_by_an_event_still_being_delivered(store: Arc<dyn Store>) {
    let a = tenant("a");
    store.create_tenant(a.clone()).await.unwrap();
    let ep = endpoint(&a.id);
    store.create_endpoint(ep.clone(), 10).await.unwrap();
    let sub = subscription(&a.id, &ep.id);
    // Event 1 waits for its delivery (an endpoint that is down); 2..=20 are done.
    let mut events = vec![new_event(
        &a.id,
        None,
        1_000,
        &[(sub.id.clone(), ep.id.clone())],
    )];
    events.extend((0..19).map(|i| new_event(&a.id, None, 1_001 + i, &[])));
    append(store.as_ref(), events, 1).await;
    for i in 0..30 {
        store
            .capture_inbox(InboxMessage {
                record_version: RECORD_VERSION,
                id: AttemptId::generate(2_000 + i),
                tenant_id: a.id.clone(),
                endpoint_id: ep.id.clone(),
                delivery_id: DeliveryId::from_trusted(format!("dlv_{i}")),
                event_id: EventId::generate(2_000),
                topic: "x".into(),
                received_at: 2_000 + i,
                headers: vec![],
                body: "{}".into(),
            })
            .await
            .unwrap();
    }
    store
        .create_replay(
            Replay {
                record_version: RECORD_VERSION,
                id: ReplayId::generate(1_500).to_string(),
                tenant_id: a.id.clone(),
                created_at: 1_500,
                request: serde_json::json!({}),
                deliveries: 0,
                complete: true,
                stopped: None,
            },
            vec![],
            u64::MAX,
        )
        .await
        .unwrap();
    // Tiny steps: every call examines or deletes at most 3 rows.
    let policy = PurgePolicy {
        now: 1_000_000,
        events_max_age_secs: 10,
        dlq_max_age_secs: 10,
        inbox_max_age_secs: 10,
        max_rows: 3,
        max_millis: 0,
    };
    let r = purge_pass(store.as_ref(), policy).await;
    assert_eq!(r.events, 19, "all but the one still being delivered");
    let left = store
        .list_events(
            &a.id,
            EventQuery {
                page: page(100),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        left.items.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(store.queue_counts(Some(&a.id)).await.unwrap().pending, 1);
    // 30 inbox messages and the replay record: other rows.
    assert_eq!(r.other, 31, "{r:?}");
    assert!(
        store
            .list_inbox(&a.id, &ep.id, page(100))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A reader from the start is told that history begins after what was removed.
    let read = store.read_stream(&a.id, 0, 100, None, 0).await.unwrap();
    assert_eq!(read.oldest, Some(21), "{read:?}");
    assert_eq!(read.head, 20);
}

async fn tenant_retention_overrides_the_default(store: Arc<dyn Store>) {
    let (keep, drop_) = (tenant("keeps"), tenant("drops"));
    store.create_tenant(keep.clone()).await.unwrap();
    store.create_tenant(drop_.clone()).await.unwrap();
    let t = store
        .update_tenant(
            &keep.id,
            Box::new(|t| t.retention.events_max_age_secs = Some(1_000)),
        )
        .await
        .unwrap();
    assert_eq!(t.retention.events_max_age_secs, Some(1_000));
    for tenant in [&keep, &drop_] {
        append(&*store, vec![new_event(&tenant.id, None, 1_000, &[])], 1).await;
    }
    // Default: 10 s; at now = 60 s the default tenant's event is old, the other's not.
    let policy = PurgePolicy {
        now: 60_000,
        events_max_age_secs: 10,
        dlq_max_age_secs: 10,
        inbox_max_age_secs: 0,
        max_rows: 100,
        max_millis: 0,
    };
    let r = store.purge(policy, PurgeCursor::default()).await.unwrap();
    assert_eq!(r.events, 1);
    assert_eq!(store.head_cursor(&keep.id).await.unwrap(), 1);
    let kept = store
        .list_events(
            &keep.id,
            EventQuery {
                page: page(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(kept.items.len(), 1);
    let gone = store
        .list_events(
            &drop_.id,
            EventQuery {
                page: page(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(gone.items.is_empty());
    assert!(matches!(
        store
            .update_tenant(&TenantId::generate(1), Box::new(|_| {}))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn a_retention_batch_stops_at_its_time_budget(store: Arc<dyn Store>) {
    let t = tenant("slices");
    store.create_tenant(t.clone()).await.unwrap();
    // 3,000 expired events (no deliveries): far more than 1 ms of deleting.
    for chunk in 0..6 {
        let events = (0..500)
            .map(|i| new_event(&t.id, None, 1_000 + chunk * 500 + i, &[]))
            .collect();
        append(&*store, events, 1).await;
    }
    let policy = PurgePolicy {
        now: 1_000_000,
        events_max_age_secs: 10,
        dlq_max_age_secs: 10,
        inbox_max_age_secs: 0,
        max_rows: 1_000_000,
        max_millis: 1,
    };
    let first = store.purge(policy, PurgeCursor::default()).await.unwrap();
    assert!(!first.done, "the time budget ends the batch early");
    assert!((1..3_000).contains(&first.events), "{}", first.events);
    // Later batches finish the job, each from where the last stopped.
    let mut deleted = first.events;
    let mut next = first.next;
    for _ in 0..10_000 {
        let r = store.purge(policy, next.take().unwrap()).await.unwrap();
        deleted += r.events;
        if r.done {
            break;
        }
        next = r.next;
    }
    assert_eq!(deleted, 3_000);
    // Without a time budget one call takes them all.
    append(
        &*store,
        (0..50)
            .map(|i| new_event(&t.id, None, 900_000 + i, &[]))
            .collect(),
        1,
    )
    .await;
    let all = store
        .purge(
            PurgePolicy {
                now: 2_000_000,
                max_millis: 0,
                ..policy
            },
            PurgeCursor::default(),
        )
        .await
        .unwrap();
    assert!(all.done);
    assert_eq!(all.events, 50);
}

/// Records what the feed announces.
#[derive(Debug, Default)]
struct FeedRecorder {
    stream: std::sync::Mutex<Vec<(String, u64, String)>>,
    queued: std::sync::Mutex<Vec<(TenantId, EndpointId)>>,
    changes: std::sync::Mutex<Vec<feed::Change>>,
}

impl feed::FeedListener for FeedRecorder {
    fn wants_stream(&self, _tenant: &str) -> bool {
        true
    }

    fn committed(&self, batch: &feed::Committed) {
        self.stream.lock().unwrap().extend(
            batch
                .stream
                .iter()
                .map(|(t, i)| (t.to_string(), i.cursor, i.topic.to_string())),
        );
        self.queued
            .lock()
            .unwrap()
            .extend(batch.queued.iter().cloned());
        self.changes
            .lock()
            .unwrap()
            .extend(batch.changes.iter().cloned());
    }
}

/// Waits (bounded) until `done` holds: a shared database's feed arrives by tailing.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the feed never announced {what}");
}

async fn the_feed_announces_commits_in_order(store: Arc<dyn Store>) {
    let seen = Arc::new(FeedRecorder::default());
    store.feed().subscribe(seen.clone());
    let t = tenant("a");
    store.create_tenant(t.clone()).await.unwrap();
    let e = endpoint(&t.id);
    store.create_endpoint(e.clone(), 10).await.unwrap();
    let sub = subscription(&t.id, &e.id);
    store.create_subscription(sub.clone(), 10).await.unwrap();
    let sub_change = feed::Change::Subscription {
        tenant: t.id.clone(),
        id: sub.id.clone(),
    };
    eventually("a new subscription", || {
        seen.changes.lock().unwrap().contains(&sub_change)
    })
    .await;

    let pair = [(sub.id.clone(), e.id.clone())];
    append(
        store.as_ref(),
        vec![
            new_event(&t.id, None, 1_000, &pair),
            new_event(&t.id, None, 1_001, &pair),
        ],
        0,
    )
    .await;
    eventually("two events and their queued endpoint", || {
        seen.stream.lock().unwrap().len() >= 2
            && seen
                .queued
                .lock()
                .unwrap()
                .contains(&(t.id.clone(), e.id.clone()))
    })
    .await;
    let stream = seen.stream.lock().unwrap().clone();
    let mine = |tenant: &str| -> Vec<u64> {
        stream
            .iter()
            .filter(|(x, _, _)| x == tenant)
            .map(|(_, c, _)| *c)
            .collect()
    };
    assert_eq!(mine(t.id.as_str()), [1, 2], "cursor order: {stream:?}");
    assert!(stream.iter().all(|(_, _, topic)| topic == "orders.created"));

    seen.changes.lock().unwrap().clear();
    store
        .update_endpoint(&t.id, &e.id, Box::new(|e: &mut Endpoint| e.enabled = false))
        .await
        .unwrap();
    let updated = feed::Change::Endpoint {
        tenant: t.id.clone(),
        id: e.id.clone(),
        deleted: false,
    };
    eventually("an endpoint update", || {
        seen.changes.lock().unwrap().contains(&updated)
    })
    .await;
    store.delete_endpoint(&t.id, &e.id).await.unwrap();
    let deleted = feed::Change::Endpoint {
        tenant: t.id.clone(),
        id: e.id.clone(),
        deleted: true,
    };
    eventually("an endpoint deletion and its subscription", || {
        let c = seen.changes.lock().unwrap();
        c.contains(&deleted) && c.contains(&sub_change)
    })
    .await;
}

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            conformance!(@case $make, tenants_list_in_pages);
            conformance!(@case $make, api_keys_are_found_by_hash_until_revoked);
            conformance!(@case $make, endpoints_are_tenant_scoped_limited_and_cascade);
            conformance!(@case $make, endpoint_writes_keep_their_record_version_and_sealed_values);
            conformance!(@case $make, audit_records_chain_list_and_expire);
            conformance!(@case $make, audit_records_commit_with_their_change_or_not_at_all);
            conformance!(@case $make, subscriptions_need_their_endpoint);
            conformance!(@case $make, appended_events_get_gapless_cursors_per_tenant);
            conformance!(@case $make, idempotency_keys_dedupe_within_the_window);
            conformance!(@case $make, events_are_stored_with_pending_deliveries);
            conformance!(@case $make, claims_lease_one_endpoints_due_deliveries_in_order);
            conformance!(@case $make, outcomes_move_deliveries_through_retry_success_and_dead);
            conformance!(@case $make, expired_leases_return_to_the_queue);
            conformance!(@case $make, a_restarting_node_returns_its_leases_whatever_their_end);
            conformance!(@case $make, a_beating_node_is_listed_and_leads);
            conformance!(@case $make, replays_add_fresh_deliveries_to_old_events);
            conformance!(@case $make, the_queue_never_grows_past_its_limit);
            conformance!(@case $make, replays_and_requeues_respect_the_queue_limit);
            conformance!(@case $make, retention_removes_settled_expired_data_and_nothing_else);
            conformance!(@case $make, tenant_retention_overrides_the_default);
            conformance!(@case $make, an_events_deliveries_stay_within_its_range);
            conformance!(@case $make, retention_passes_by_an_event_still_being_delivered);
            conformance!(@case $make, a_retention_batch_stops_at_its_time_budget);
            conformance!(@case $make, the_stream_interleaves_events_and_attempt_statuses);
            conformance!(@case $make, a_retried_delivery_keeps_its_transformed_body);
            conformance!(@case $make, the_feed_announces_commits_in_order);
        }
    };
    (@case $make:expr, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (store, _guard) = $make;
            super::$name(store).await;
        }
    };
}

fn redb_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(
        &dir.path().join("s.redb"),
        RedbOptions::default(),
        CommitFeed::new(),
    )
    .unwrap();
    (Arc::new(store), dir)
}

conformance!(redb, redb_store());

/// The PostgreSQL server the tests use (`GATEPULSE_TEST_POSTGRES`, else the local one).
fn pg_url() -> String {
    std::env::var("GATEPULSE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Drops the test's schema when the test ends, pass or fail.
struct PgSchema(String);

impl Drop for PgSchema {
    fn drop(&mut self) {
        let schema = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A store in a schema of its own on the machine's PostgreSQL.
async fn pg_store() -> (Arc<dyn Store>, PgSchema) {
    let schema = format!("gp_conf_{:016x}", rand::random::<u64>());
    let store = PgStore::open(
        PgOptions {
            url: pg_url(),
            schema: Some(schema.clone()),
            pool_size: 8,
            commit_max_batch: 256,
            commit_concurrency: 2,
            poll_interval: std::time::Duration::from_millis(200),
            connect_timeout: std::time::Duration::from_secs(5),
            stream_status: true,
        },
        CommitFeed::new(),
    )
    .await
    .expect("PostgreSQL at GATEPULSE_TEST_POSTGRES (default 127.0.0.1:5432, database test)");
    (Arc::new(store), PgSchema(schema))
}

conformance!(postgres, pg_store().await);

/// PostgreSQL is shared by nodes: a restarting node takes back its own leases and
/// leaves another node's running sends alone (SPEC HA-2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_restarting_node_leaves_other_nodes_leases() {
    let (store, _guard) = pg_store().await;
    let (t, e1, e2) = two_endpoint_queue(&store, 2).await;
    let mine = store.claim_due(claim(&t, &e1, 2_000, 10)).await.unwrap();
    let theirs = store
        .claim_due(Claim {
            node: "n2".into(),
            ..claim(&t, &e2, 2_000, 10)
        })
        .await
        .unwrap();
    assert_eq!((mine.len(), theirs.len()), (2, 2));
    assert_eq!(store.reclaim_node_leases("n1").await.unwrap(), 2);
    // n2's sends still hold their leases: their outcomes are accepted.
    for c in &theirs {
        let d = &c.delivery;
        let ok = store
            .record_outcome(first_attempt_succeeded(&t, d))
            .await
            .unwrap();
        assert!(ok, "n2's lease was taken by n1's restart");
    }
    assert_eq!(store.reclaim_node_leases("n2").await.unwrap(), 0);
}

/// A second node on `first`'s schema.
async fn pg_node(schema: &PgSchema) -> Arc<dyn Store> {
    let store = PgStore::open(
        PgOptions {
            url: pg_url(),
            schema: Some(schema.0.clone()),
            pool_size: 4,
            commit_max_batch: 256,
            commit_concurrency: 1,
            poll_interval: std::time::Duration::from_millis(200),
            connect_timeout: std::time::Duration::from_secs(5),
            stream_status: true,
        },
        CommitFeed::new(),
    )
    .await
    .unwrap();
    Arc::new(store)
}

/// Two nodes on one database: one leader at a time, a term that only goes up,
/// renewal by the holder alone, a handed-back leadership taken at once, an expired
/// one taken by the next bid, and claims fenced by a term that ended refused
/// (SPEC HA-1, HA-2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_elect_one_leader_at_a_time() {
    let (n1, guard) = pg_store().await;
    let n2 = pg_node(&guard).await;
    let (t, e1, _) = two_endpoint_queue(&n1, 2).await;

    let a = n1.cluster_beat(beat("n1", 60_000, None)).await.unwrap();
    assert!(a.held);
    let b = n2.cluster_beat(beat("n2", 60_000, None)).await.unwrap();
    assert!(!b.held, "n1's leadership has not expired: {b:?}");
    assert_eq!((b.leader.as_deref(), b.term), (Some("n1"), a.term));
    // n2 cannot renew a term it does not hold.
    let c = n2
        .cluster_beat(beat("n2", 60_000, Some(a.term)))
        .await
        .unwrap();
    assert!(!c.held);
    assert_eq!(
        n1.cluster_beat(beat("n1", 60_000, Some(a.term)))
            .await
            .unwrap(),
        a
    );

    // Handed back: the next bid wins at once, with a higher term.
    n1.cluster_leave("n1", Some(a.term)).await.unwrap();
    let d = n2.cluster_beat(beat("n2", 60_000, None)).await.unwrap();
    assert!(d.held);
    assert_eq!(d.term, a.term + 1);
    // The former leader's term is over, whatever it believes.
    let e = n1
        .cluster_beat(beat("n1", 60_000, Some(a.term)))
        .await
        .unwrap();
    assert!(!e.held);
    assert_eq!(e.leader.as_deref(), Some("n2"));
    let stale = Claim {
        fence: Some(a.term),
        ..claim(&t, &e1, 2_000, 10)
    };
    assert!(
        n1.claim_due(stale).await.unwrap().is_empty(),
        "a claim under an ended term"
    );
    let current = Claim {
        node: "n2".into(),
        fence: Some(d.term),
        ..claim(&t, &e1, 2_000, 10)
    };
    assert_eq!(n2.claim_due(current).await.unwrap().len(), 2);

    // Not renewed: it expires in the database's clock and the next bid takes it.
    let short = n2
        .cluster_beat(beat("n2", 1_000, Some(d.term)))
        .await
        .unwrap();
    assert!(short.held);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let f = n1.cluster_beat(beat("n1", 60_000, None)).await.unwrap();
    assert!(f.held, "{f:?}");
    assert_eq!(f.term, d.term + 1);

    // A node restarted under the same id takes a new term at once.
    let g = n1.cluster_beat(beat("n1", 60_000, None)).await.unwrap();
    assert!(g.held);
    assert_eq!(g.term, f.term + 1);

    let state = n1.cluster_state().await.unwrap();
    let ids: Vec<_> = state
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.leases))
        .collect();
    assert_eq!(ids, [("n1", 0), ("n2", 2)]);
}

/// The new leader takes back the leases of nodes that went silent (a killed
/// leader's), never those of a node that still beats (SPEC HA-2, HA-3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_silent_nodes_leases_return_to_the_queue() {
    let (store, _guard) = pg_store().await;
    let (t, e1, e2) = two_endpoint_queue(&store, 2).await;
    store
        .cluster_beat(beat("alive", 60_000, None))
        .await
        .unwrap();
    let alive = Claim {
        node: "alive".into(),
        ..claim(&t, &e1, 2_000, 10)
    };
    assert_eq!(store.claim_due(alive).await.unwrap().len(), 2);
    // Never registered (or gone from the list): silent.
    let gone = Claim {
        node: "gone".into(),
        ..claim(&t, &e2, 2_000, 10)
    };
    assert_eq!(store.claim_due(gone).await.unwrap().len(), 2);
    assert_eq!(
        store
            .reclaim_foreign_leases("me", Some(60_000))
            .await
            .unwrap(),
        2,
        "only the silent node's"
    );
    let state = store.cluster_state().await.unwrap();
    let leases: Vec<_> = state
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.leases))
        .collect();
    assert_eq!(leases, [("alive", 2)]);
    assert_eq!(
        store
            .claim_due(claim(&t, &e2, 2_000, 10))
            .await
            .unwrap()
            .len(),
        2,
        "queued again"
    );
    // Everyone's but mine.
    assert_eq!(store.reclaim_foreign_leases("n1", None).await.unwrap(), 2);
}

// Backend-specific behaviour of redb: persistence and versioning.

#[tokio::test]
async fn redb_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let t = tenant("a");
    {
        let store = RedbStore::open(&path, RedbOptions::default(), CommitFeed::new()).unwrap();
        store.create_tenant(t.clone()).await.unwrap();
        append(
            &store,
            (0..10)
                .map(|i| new_event(&t.id, Some(&format!("k{i}")), 1000, &[]))
                .collect(),
            60_000,
        )
        .await;
        Store::close(&store);
        // Closed while still referenced (as the server's store is at shutdown): the
        // file is released and closed cleanly, so the next open need not repair it;
        // reads through the old handle now fail instead of reading a closed file.
        match gatepulse::store::backends::redb::inspect(&path).unwrap() {
            gatepulse::store::backends::redb::Inspected::Meta(m) => {
                assert_eq!(m.version, STORE_VERSION)
            }
            other => panic!("not closed cleanly: {other:?}"),
        }
        assert!(store.get_tenant(&t.id).await.is_err());
    }
    let store = RedbStore::open(&path, RedbOptions::default(), CommitFeed::new()).unwrap();
    assert_eq!(store.head_cursor(&t.id).await.unwrap(), 10);
    let again = append(
        &store,
        vec![new_event(&t.id, Some("k3"), 2000, &[])],
        60_000,
    )
    .await;
    assert!(again[0].deduped);
    assert_eq!(again[0].cursor, 4);
    assert_eq!(store.meta().version, STORE_VERSION);
    assert!(store.read_only_reason().is_none());
}

#[tokio::test]
async fn redb_store_from_a_newer_version_opens_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    {
        let db = ::redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta: ::redb::Table<&str, &[u8]> = txn
                .open_table(::redb::TableDefinition::new("meta"))
                .unwrap();
            let newer = format!(
                r#"{{"version":{},"created_at":1,"last_compaction_at":null}}"#,
                STORE_VERSION + 1
            );
            meta.insert("store_meta", newer.as_bytes()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = RedbStore::open(&path, RedbOptions::default(), CommitFeed::new()).unwrap();
    let reason = store.read_only_reason().expect("read-only");
    assert!(reason.contains("newer GatePulse"), "{reason}");
    assert!(matches!(
        store.create_tenant(tenant("x")).await,
        Err(StoreError::ReadOnly(_))
    ));
    assert_eq!(
        store.meta().version,
        STORE_VERSION + 1,
        "the file's meta is left untouched"
    );
}
