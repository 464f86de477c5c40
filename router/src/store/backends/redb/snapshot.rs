//! Online snapshots and offline restore of the redb store.
//!
//! A snapshot copies every table from one read transaction into a new store file, so
//! it is consistent without pausing the writer (MVCC). The directory gets the file
//! and a `manifest.json` with its size, SHA-256, row counts and store version.
//! Restore verifies the manifest and installs the file into a stopped node's data dir.

use std::io::Read;
use std::path::Path;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};

use super::tables::*;
use crate::clock::now_ms;
use crate::store::{REDB_FILE, STORE_VERSION, SnapshotManifest, StoreError, StoreResult};

pub const MANIFEST: &str = "manifest.json";
const MANIFEST_VERSION: u32 = 1;

fn io(context: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{context} {}: {e}", path.display()))
}

/// Most rows copied per destination transaction: bounds the memory a snapshot holds.
const CHUNK_ROWS: u64 = 5_000;
/// Most key and value bytes copied per destination transaction. After each, the
/// snapshot file's written pages are flushed to disk before the copy goes on.
const CHUNK_BYTES: u64 = 4 << 20;
/// Pause after each chunk, so the snapshot's I/O leaves room for the live store's
/// commits (a snapshot is never urgent; publishes are).
const CHUNK_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// The snapshot file's page cache. Small on purpose: redb keeps the pages of
/// non-durable commits in it until the last (durable) commit writes them, and that
/// write is what a live commit would wait for.
const SNAPSHOT_CACHE: usize = 32 << 20;

/// The snapshot file being written, flushed a chunk at a time.
///
/// Why: on ext4 (data=ordered) a live commit's `fdatasync` that changes the store
/// file's size or allocation commits the filesystem journal, and a journal commit
/// first writes out every newly allocated dirty page of *any* file. Left to the
/// kernel, gigabytes of snapshot pages sit dirty and one live commit pays for them
/// (measured: publishes held 100-250 ms, several times per snapshot). Flushing the
/// snapshot file after every few megabytes keeps what a live commit can wait for
/// that small; it also paces the copy at the disk's speed.
struct Target<'a> {
    db: &'a Database,
    file: std::fs::File,
    path: &'a Path,
}

impl Target<'_> {
    fn flush(&self) -> StoreResult<()> {
        self.file
            .sync_data()
            .map_err(|e| io("flushing", self.path, e))
    }
}

/// Copies one table in chunks of [`CHUNK_ROWS`] rows or [`CHUNK_BYTES`], each its own
/// non-durable commit followed by a flush of the file (the snapshot's last commit is
/// durable); returns the row count.
fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    src: &ReadTransaction,
    dst: &Target<'_>,
    def: TableDefinition<K, V>,
) -> StoreResult<u64> {
    let from = match src.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut rows = from.iter()?;
    let mut n = 0u64;
    loop {
        let mut txn = dst.db.begin_write()?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut in_chunk = 0;
        let mut bytes = 0u64;
        let mut done = true;
        {
            let mut to = txn.open_table(def)?;
            for row in rows.by_ref() {
                let (k, v) = row?;
                let (k, v) = (k.value(), v.value());
                bytes += (K::as_bytes(&k).as_ref().len() + V::as_bytes(&v).as_ref().len()) as u64;
                to.insert(k, v)?;
                in_chunk += 1;
                if in_chunk == CHUNK_ROWS || bytes >= CHUNK_BYTES {
                    done = false;
                    break;
                }
            }
        }
        txn.commit()?;
        n += in_chunk;
        dst.flush()?;
        if done {
            return Ok(n);
        }
        std::thread::sleep(CHUNK_PAUSE);
    }
}

fn sha256_file(path: &Path) -> StoreResult<String> {
    let mut f = std::fs::File::open(path).map_err(|e| io("reading", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Writes a snapshot of `db` into `dir`.
pub(super) fn write(
    db: &Database,
    dir: &Path,
    store_version: u32,
) -> StoreResult<SnapshotManifest> {
    if dir.join(MANIFEST).exists() || dir.join(REDB_FILE).exists() {
        return Err(StoreError::Backend(format!(
            "{} already holds a snapshot; choose an empty directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    let tmp = dir.join(format!("{REDB_FILE}.partial"));
    let _ = std::fs::remove_file(&tmp);
    let created_at = now_ms();
    let src = db.begin_read()?;
    let out = Database::builder()
        .set_cache_size(SNAPSHOT_CACHE)
        .create(&tmp)
        .map_err(|e| StoreError::Backend(format!("creating {}: {e}", tmp.display())))?;
    let file = std::fs::File::open(&tmp).map_err(|e| io("opening", &tmp, e))?;
    let target = Target {
        db: &out,
        file,
        path: &tmp,
    };
    let mut tables = std::collections::BTreeMap::new();
    let mut count = |name: &str, n: u64| {
        tables.insert(name.to_owned(), n);
    };
    count("meta", copy(&src, &target, META)?);
    count("tenants", copy(&src, &target, TENANTS)?);
    count("api_keys", copy(&src, &target, API_KEYS)?);
    count("api_key_hashes", copy(&src, &target, API_KEY_HASHES)?);
    count("endpoints", copy(&src, &target, ENDPOINTS)?);
    count("subscriptions", copy(&src, &target, SUBSCRIPTIONS)?);
    count("events", copy(&src, &target, EVENTS)?);
    count("event_ids", copy(&src, &target, EVENT_IDS)?);
    count("idempotency", copy(&src, &target, IDEMPOTENCY)?);
    count("deliveries", copy(&src, &target, DELIVERIES)?);
    count("deliveries_due_v2", copy(&src, &target, DELIVERIES_DUE)?);
    count("leases", copy(&src, &target, LEASES)?);
    count("dead", copy(&src, &target, DEAD)?);
    count("replays", copy(&src, &target, REPLAYS)?);
    count("inbox", copy(&src, &target, INBOX)?);
    count("attempts", copy(&src, &target, ATTEMPTS)?);
    count("stream_status", copy(&src, &target, STREAM_STATUS)?);
    count("plugins", copy(&src, &target, PLUGINS)?);
    count("plugin_modules", copy(&src, &target, PLUGIN_MODULES)?);
    count("counters", copy(&src, &target, COUNTERS)?);
    count("audit", copy(&src, &target, AUDIT)?);
    count("audit_ids", copy(&src, &target, AUDIT_IDS)?);
    count("audit_heads", copy(&src, &target, AUDIT_HEADS)?);
    // One durable commit makes every chunk durable.
    drop(target);
    let copied = std::time::Instant::now();
    let last = out.begin_write()?;
    last.commit()?;
    let committed = std::time::Instant::now();
    drop(src);
    tracing::info!(
        final_commit_ms = (committed - copied).as_millis() as u64,
        "snapshot: copy committed; read transaction released"
    );
    drop(out);
    let file = dir.join(REDB_FILE);
    std::fs::rename(&tmp, &file).map_err(|e| io("renaming", &tmp, e))?;
    tracing::info!(file = %file.display(), "snapshot: file in place; hashing it");
    let bytes = std::fs::metadata(&file)
        .map_err(|e| io("reading", &file, e))?
        .len();
    let manifest = SnapshotManifest {
        manifest_version: MANIFEST_VERSION,
        store_version,
        created_at,
        file: REDB_FILE.to_owned(),
        bytes,
        sha256: sha256_file(&file)?,
        tables,
    };
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Backend(e.to_string()))?;
    std::fs::write(dir.join(MANIFEST), json).map_err(|e| io("writing", dir, e))?;
    Ok(manifest)
}

/// Verifies a snapshot directory and installs it as `data_dir`'s store. Refuses to
/// replace an existing store unless `force` (the old file is then kept beside it as
/// `gatepulse.redb.before-restore`).
pub fn restore(snapshot: &Path, data_dir: &Path, force: bool) -> StoreResult<SnapshotManifest> {
    let manifest_path = snapshot.join(MANIFEST);
    let raw = std::fs::read(&manifest_path).map_err(|e| io("reading", &manifest_path, e))?;
    let manifest: SnapshotManifest = serde_json::from_slice(&raw).map_err(|e| {
        StoreError::Backend(format!(
            "{}: not a snapshot manifest: {e}",
            manifest_path.display()
        ))
    })?;
    if manifest.store_version > STORE_VERSION {
        return Err(StoreError::Backend(format!(
            "the snapshot holds store version {}; this build reads up to {STORE_VERSION}",
            manifest.store_version
        )));
    }
    let file = snapshot.join(&manifest.file);
    let len = std::fs::metadata(&file)
        .map_err(|e| io("reading", &file, e))?
        .len();
    if len != manifest.bytes || sha256_file(&file)? != manifest.sha256 {
        return Err(StoreError::Backend(format!(
            "{} does not match its manifest (size or SHA-256): the snapshot is damaged",
            file.display()
        )));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| io("creating", data_dir, e))?;
    let target = data_dir.join(REDB_FILE);
    if target.exists() {
        if !force {
            return Err(StoreError::Backend(format!(
                "{} already exists; pass --force to replace it",
                target.display()
            )));
        }
        // Refuse while a server has it open.
        drop(Database::open(&target).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Backend(format!(
                "{} is open in another process: stop `gp serve` first",
                target.display()
            )),
            other => StoreError::Backend(other.to_string()),
        })?);
        let aside = data_dir.join(format!("{REDB_FILE}.before-restore"));
        std::fs::rename(&target, &aside).map_err(|e| io("moving aside", &target, e))?;
    }
    let tmp = data_dir.join(format!("{REDB_FILE}.restoring"));
    std::fs::copy(&file, &tmp).map_err(|e| io("copying to", &tmp, e))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("syncing", &tmp, e))?;
    std::fs::rename(&tmp, &target).map_err(|e| io("installing", &target, e))?;
    Ok(manifest)
}
