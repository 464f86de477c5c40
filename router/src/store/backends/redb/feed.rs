//! The stream feed: the items of a committed batch that live stream clients are
//! waiting for.

use std::sync::Arc;

use crate::store::feed::CommitFeed;
use crate::store::{AppendOutcome, Appended, Event, StoreResult};
use crate::stream::{STATUS_TOPIC, StreamItem};

/// A `deliveries.status` item written by this commit.
pub(super) struct StatusRow {
    pub(super) tenant: Box<str>,
    pub(super) cursor: u64,
    pub(super) at: i64,
    pub(super) data: String,
}

/// The stream items of one successful commit, for tenants that have listeners:
/// new events (in the order of `ops`) and status rows.
pub(super) fn live_items(
    feed: &CommitFeed,
    ops: &[super::writer::HotOp],
    results: &[StoreResult<super::writer::HotResult>],
    statuses: Vec<StatusRow>,
) -> Vec<(Box<str>, Arc<StreamItem>)> {
    let mut out = Vec::new();
    for (op, result) in ops.iter().zip(results) {
        let (
            super::writer::HotOp::Append { events, .. },
            Ok(super::writer::HotResult::Append(appended)),
        ) = (op, result)
        else {
            continue;
        };
        for (ev, appended) in events.iter().zip(appended) {
            let Appended::Stored(AppendOutcome {
                cursor,
                deduped: false,
                ..
            }) = appended
            else {
                continue;
            };
            if !feed.wants_stream(&ev.tenant) {
                continue;
            }
            match serde_json::from_slice::<Event>(&ev.record) {
                Ok(mut event) => {
                    event.cursor = *cursor;
                    out.push((
                        ev.tenant.as_str().into(),
                        Arc::new(StreamItem::from_event(&event)),
                    ));
                }
                Err(e) => tracing::error!(error = %e, "stream: cannot decode a new event"),
            }
        }
    }
    for row in statuses {
        if feed.wants_stream(&row.tenant) {
            let item = StreamItem::new(row.cursor, STATUS_TOPIC, row.at, &row.data);
            out.push((row.tenant, Arc::new(item)));
        }
    }
    out
}
