//! Opening the store file: metadata, migrations from older store versions, table
//! creation, and offline compaction.

use std::path::Path;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::store::feed::CommitFeed;
use crate::store::{STORE_VERSION, StoreError, StoreMeta, StoreResult};

use super::tables::*;
use super::writer::{WriterHandle, WriterOptions};
use super::{RedbOptions, RedbStore, decode, encode};

/// A migration from one store version to the next, run in one write transaction.
pub(super) struct Migration {
    from: u32,
    run: fn(&WriteTransaction) -> StoreResult<()>,
}

/// Steps from older store versions; each takes `from` to `from + 1`.
pub(super) const MIGRATIONS: &[Migration] = &[
    // 1 → 2: the `stream_status`, `plugins` and `plugin_modules` tables (created
    // with every other missing table).
    Migration {
        from: 1,
        run: |_| Ok(()),
    },
    // 2 → 3: endpoint secrets and header values are sealed under the master keys.
    // Nothing changes in the file here: the server seals the records it finds in
    // plain form before serving (`crate::secrets::prepare`), which needs the keys the
    // store does not have; the version keeps older builds from writing plaintext.
    Migration {
        from: 2,
        run: |_| Ok(()),
    },
    // 3 → 4: `stream_status` rows may hold positions of other topics (audit records,
    // tagged with their topic: `tables::stream_row`). Existing rows are valid as
    // they are; the version keeps older builds from serving tagged rows as statuses.
    Migration {
        from: 3,
        run: |_| Ok(()),
    },
];

/// Compacts a store file that no process has open.
/// What an embedded store file says about itself, read without writing to it (for
/// `gp doctor`).
#[derive(Debug)]
pub enum Inspected {
    /// No store file at that path (a new node creates one).
    Missing,
    /// Another process (a running `gp serve`) holds it.
    InUse,
    /// Not closed cleanly: the next start repairs it first.
    NeedsRepair,
    Meta(StoreMeta),
}

/// Reads `store_meta` of the store at `path` through a read-only handle.
pub fn inspect(path: &Path) -> StoreResult<Inspected> {
    if !path.exists() {
        return Ok(Inspected::Missing);
    }
    let db = match redb::ReadOnlyDatabase::open(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Ok(Inspected::InUse),
        Err(redb::DatabaseError::RepairAborted) => return Ok(Inspected::NeedsRepair),
        Err(e) => {
            return Err(StoreError::Backend(format!(
                "opening {}: {e}",
                path.display()
            )));
        }
    };
    let txn = db.begin_read()?;
    let meta = match txn.open_table(META) {
        Ok(table) => table
            .get("store_meta")?
            .map(|v| decode("meta", v.value()))
            .transpose()?,
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e.into()),
    };
    meta.map(Inspected::Meta)
        .ok_or_else(|| StoreError::Backend(format!("{} holds no store_meta", path.display())))
}

pub fn compact_file(path: &Path) -> StoreResult<(u64, u64)> {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(path);
    let mut db = Database::open(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Backend(format!(
            "{} is open in another process: stop `gp serve` first",
            path.display()
        )),
        other => StoreError::Backend(format!("opening {}: {other}", path.display())),
    })?;
    // Each call moves what it can; repeat until nothing more moves.
    for _ in 0..16 {
        match db.compact() {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(StoreError::Backend(format!("compacting: {e}"))),
        }
    }
    drop(db);
    Ok((before, size(path)))
}

impl RedbStore {
    /// Opens (creating if absent) the store file at `path`, migrating an older store
    /// version; a newer or unmigratable one opens read-only with an instruction.
    pub fn open(path: &Path, options: RedbOptions, feed: Arc<CommitFeed>) -> StoreResult<Self> {
        let db = Database::builder()
            .set_cache_size(options.cache_size_bytes)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Backend(format!(
                    "{} is already open in another process (is another `gp serve` running \
                     on this data dir?)",
                    path.display()
                )),
                other => StoreError::Backend(format!("opening {}: {other}", path.display())),
            })?;
        let (meta, read_only) = Self::prepare(&db)?;
        let db = Arc::new(db);
        let (writer, thread) = WriterHandle::spawn(
            db.clone(),
            feed.clone(),
            WriterOptions {
                max_batch: options.commit_max_batch.max(1),
                max_queued: options.max_queued_writes,
                max_wait: options.commit_max_wait,
                stream_status: options.stream_status,
            },
        )
        .map_err(|e| StoreError::Backend(format!("spawning writer thread: {e}")))?;
        if let Some(reason) = &read_only {
            tracing::warn!(reason = %reason, "store opened read-only");
        }
        Ok(Self {
            db: arc_swap::ArcSwapOption::from(Some(db)),
            writer,
            writer_thread: Mutex::new(Some(thread)),
            meta: Mutex::new(meta),
            read_only,
            feed,
            path: path.to_path_buf(),
            node: Mutex::new(None),
        })
    }

    /// Reads `store_meta`, initialising a new store and running migrations.
    fn prepare(db: &Database) -> StoreResult<(StoreMeta, Option<String>)> {
        let txn = db.begin_write()?;
        let existing: Option<StoreMeta> = {
            let meta = txn.open_table(META)?;
            let value = meta.get("store_meta")?;
            match value {
                Some(v) => Some(decode("meta", v.value())?),
                None => None,
            }
        };
        let Some(mut meta) = existing else {
            let meta = StoreMeta {
                version: STORE_VERSION,
                created_at: crate::clock::now_ms(),
                last_compaction_at: None,
            };
            Self::create_tables(&txn)?;
            txn.open_table(META)?
                .insert("store_meta", encode(&meta)?.as_slice())?;
            txn.commit()?;
            return Ok((meta, None));
        };
        if meta.version == STORE_VERSION {
            txn.abort()?;
            return Ok((meta, None));
        }
        if meta.version > STORE_VERSION {
            txn.abort()?;
            let reason = format!(
                "this store was written by a newer GatePulse (store version {}, this build \
                 reads up to {STORE_VERSION}). Upgrade gp to the release that wrote it, or \
                 restore a backup taken with this version. Nothing will be written.",
                meta.version
            );
            return Ok((meta, Some(reason)));
        }
        let from = meta.version;
        while meta.version < STORE_VERSION {
            let Some(step) = MIGRATIONS.iter().find(|m| m.from == meta.version) else {
                txn.abort()?;
                let reason = format!(
                    "store version {} cannot be migrated to {STORE_VERSION} by this build \
                     (no migration path). Open it with the release that wrote it, take a \
                     snapshot, and restore into a new data dir. Nothing will be written.",
                    meta.version
                );
                return Ok((meta, Some(reason)));
            };
            (step.run)(&txn)?;
            meta.version += 1;
        }
        Self::create_tables(&txn)?;
        txn.open_table(META)?
            .insert("store_meta", encode(&meta)?.as_slice())?;
        txn.commit()?;
        tracing::info!(from, to = STORE_VERSION, "store migrated");
        Ok((meta, None))
    }

    /// Creates every table so readers never meet a missing one.
    fn create_tables(txn: &WriteTransaction) -> StoreResult<()> {
        txn.open_table(TENANTS)?;
        txn.open_table(API_KEYS)?;
        txn.open_table(API_KEY_HASHES)?;
        txn.open_table(ENDPOINTS)?;
        txn.open_table(SUBSCRIPTIONS)?;
        txn.open_table(EVENTS)?;
        txn.open_table(EVENT_IDS)?;
        txn.open_table(IDEMPOTENCY)?;
        txn.open_table(DELIVERIES)?;
        txn.open_table(DELIVERIES_DUE)?;
        txn.open_table(LEASES)?;
        txn.open_table(DEAD)?;
        txn.open_table(REPLAYS)?;
        txn.open_table(INBOX)?;
        txn.open_table(ATTEMPTS)?;
        txn.open_table(COUNTERS)?;
        txn.open_table(STREAM_STATUS)?;
        txn.open_table(PLUGINS)?;
        txn.open_table(PLUGIN_MODULES)?;
        txn.open_table(AUDIT)?;
        txn.open_table(AUDIT_IDS)?;
        txn.open_table(AUDIT_HEADS)?;
        Ok(())
    }
}
