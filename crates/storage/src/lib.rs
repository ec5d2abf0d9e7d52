#![doc = include_str!("../README.md")]

use std::future::Future;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

/// Errors of the storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "invalid storage path {0:?}: use a relative path of A-Z a-z 0-9 . _ - / without .. or a temporary file's name"
    )]
    InvalidPath(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// How a sweep of temporary files behaves ([`Storage::sweep_temp_files`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// A temporary file last modified at least this long ago was left by a
    /// writer that died (a killed process); a younger one may belong to a
    /// write in progress. Default 15 minutes.
    pub older_than: Duration,
    /// At most this many directory entries are looked at per sweep, so one
    /// sweep's work is bounded however many files are kept; the next sweep
    /// picks up what is left. Default 1,000,000.
    pub max_entries: u64,
}

impl Default for Sweep {
    fn default() -> Self {
        Self {
            older_than: Duration::from_secs(15 * 60),
            max_entries: 1_000_000,
        }
    }
}

/// What one sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Stale temporary files removed.
    pub removed: u64,
    /// Directory entries looked at.
    pub examined: u64,
    /// False when the sweep stopped at [`Sweep::max_entries`] before the end.
    pub complete: bool,
    /// Directories that could not be listed and files that could not be removed.
    pub failed: u64,
    /// The first of those errors.
    pub first_error: Option<StorageError>,
}

/// A place to keep files. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    backend: Arc<Backend>,
}

#[derive(Debug)]
enum Backend {
    Local {
        root: PathBuf,
        /// Where the last sweep stopped short.
        sweep_cursor: Mutex<Cursor>,
    },
}

impl Storage {
    /// Files under `root` (created on first write).
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Self {
            backend: Arc::new(Backend::Local {
                root: root.into(),
                sweep_cursor: Mutex::default(),
            }),
        }
    }

    /// Writes `bytes` at `path` atomically and durably: readers never see a
    /// partial file, and once this returns the file survives a power cut.
    pub async fn put(&self, path: &str, bytes: &[u8]) -> Result<()> {
        validate(path)?;
        match &*self.backend {
            Backend::Local { root, .. } => {
                let root = root.clone();
                let target = root.join(path);
                let bytes = bytes.to_vec();
                // One blocking task for the whole sequence: it runs to its end even
                // when the caller stops waiting (a job timeout), so a cancelled put
                // leaves the whole file or nothing, never a temporary file.
                tokio::task::spawn_blocking(move || write_local(&root, &target, &bytes))
                    .await
                    .map_err(|e| StorageError::Io {
                        op: "write",
                        path: path.to_owned(),
                        source: std::io::Error::other(e),
                    })?
            }
        }
    }

    /// Writes several files, each atomically and durably as [`Storage::put`]
    /// does, with ONE fsync per directory for the whole batch instead of one
    /// per file: each file is fsynced and renamed, then each directory that
    /// received a file is fsynced once. The result of each file comes in the
    /// order given; a file is `Ok` only once its directory is synced, so a
    /// caller may mark it done (a `ready` row) on `Ok` alone. One file's error
    /// (an invalid path, a directory that cannot be created) fails that file
    /// only, and a directory whose fsync fails fails every file renamed into it.
    pub async fn put_many(&self, files: Vec<(String, Vec<u8>)>) -> Vec<Result<()>> {
        let count = files.len();
        match &*self.backend {
            Backend::Local { root, .. } => {
                let root = root.clone();
                // One blocking task for the batch, run to its end even when the
                // caller stops waiting, as in `put`.
                match tokio::task::spawn_blocking(move || write_local_many(&root, files)).await {
                    Ok(results) => results,
                    Err(e) => (0..count)
                        .map(|_| {
                            Err(StorageError::Io {
                                op: "write",
                                path: String::new(),
                                source: std::io::Error::other(e.to_string()),
                            })
                        })
                        .collect(),
                }
            }
        }
    }

    /// The file at `path`, or None when there is none.
    pub async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        validate(path)?;
        match &*self.backend {
            Backend::Local { root, .. } => {
                let file = root.join(path);
                match tokio::fs::read(&file).await {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io("read", &file)(e)),
                }
            }
        }
    }

    /// Opens the file at `path` for reading as a stream, or None when there is
    /// none: what serves a large original without holding it in memory.
    pub async fn open(&self, path: &str) -> Result<Option<FileReader>> {
        validate(path)?;
        match &*self.backend {
            Backend::Local { root, .. } => {
                let file = root.join(path);
                let opened = match tokio::fs::File::open(&file).await {
                    Ok(opened) => opened,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io("open", &file)(e)),
                };
                // The length of the open file: a replacement renamed over the
                // path meanwhile does not change what this reader serves.
                let meta = opened.metadata().await.map_err(io("stat", &file))?;
                Ok(Some(FileReader {
                    len: meta.len(),
                    modified: meta.modified().ok(),
                    reader: Box::pin(opened),
                }))
            }
        }
    }

    /// Removes the file at `path`; true if there was one. For undoing a write
    /// whose record was never stored (an upload refused midway).
    pub async fn delete(&self, path: &str) -> Result<bool> {
        validate(path)?;
        match &*self.backend {
            Backend::Local { root, .. } => {
                let file = root.join(path);
                match tokio::fs::remove_file(&file).await {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(io("remove", &file)(e)),
                }
            }
        }
    }

    /// Starts writing the file at `path` piece by piece (an upload as it
    /// streams in): the bytes go to a temporary file beside it, which
    /// [`FileWriter::commit`] makes durable and renames into place; dropped
    /// before that, the temporary file is removed. Readers never see a partial
    /// file.
    pub async fn create(&self, path: &str) -> Result<FileWriter> {
        validate(path)?;
        match &*self.backend {
            Backend::Local { root, .. } => {
                let target = root.join(path);
                let dir = target.parent().unwrap_or(root).to_owned();
                let name = target
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("file");
                let tmp = dir.join(temp_name(name));
                let created = dir.clone();
                tokio::task::spawn_blocking(move || create_dir_durably(&created))
                    .await
                    .map_err(|e| StorageError::Io {
                        op: "create directory",
                        path: dir.display().to_string(),
                        source: std::io::Error::other(e),
                    })??;
                let file = tokio::fs::File::create(&tmp)
                    .await
                    .map_err(io("create", &tmp))?;
                Ok(FileWriter {
                    file: Some(file),
                    tmp,
                    target,
                    written: 0,
                })
            }
        }
    }

    pub async fn exists(&self, path: &str) -> Result<bool> {
        validate(path)?;
        match &*self.backend {
            Backend::Local { root, .. } => tokio::fs::try_exists(root.join(path))
                .await
                .map_err(io("stat", &root.join(path))),
        }
    }

    /// Where `path` lives, for people: an absolute file name for the local backend.
    pub fn locate(&self, path: &str) -> String {
        match &*self.backend {
            Backend::Local { root, .. } => {
                let root = std::path::absolute(root).unwrap_or_else(|_| root.clone());
                root.join(path).display().to_string()
            }
        }
    }

    fn root_for_people(&self) -> String {
        match &*self.backend {
            Backend::Local { root, .. } => root.display().to_string(),
        }
    }

    /// Removes the temporary files that writers killed mid-write left anywhere
    /// under the root, once older than `sweep.older_than`. Finished files and
    /// younger temporary files are left alone. A sweep stopped by
    /// `sweep.max_entries` is continued by the next one. A root not created
    /// yet is nothing to sweep; only an unreadable root is an error, other
    /// failures are counted in [`Swept`] and the sweep goes on.
    pub async fn sweep_temp_files(&self, sweep: Sweep) -> Result<Swept> {
        match &*self.backend {
            Backend::Local { .. } => {
                let backend = Arc::clone(&self.backend);
                // The task keeps the cursor up to date even if the caller stops waiting.
                tokio::task::spawn_blocking(move || {
                    let Backend::Local { root, sweep_cursor } = &*backend;
                    let mut cursor = sweep_cursor.lock().unwrap_or_else(PoisonError::into_inner);
                    let (result, next) = sweep_local(root, sweep, std::mem::take(&mut *cursor));
                    *cursor = next;
                    result
                })
                .await
                .map_err(|e| StorageError::Io {
                    op: "sweep",
                    path: String::new(),
                    source: std::io::Error::other(e),
                })?
            }
        }
    }

    /// Sweeps at once, then every `period`, until `stop` completes; logs what
    /// each sweep removed or failed to remove. What a service runs beside its work.
    pub async fn sweep_temp_files_every(
        &self,
        period: Duration,
        sweep: Sweep,
        stop: impl Future<Output = ()>,
    ) {
        let mut stop = std::pin::pin!(stop);
        // A zero period would panic in `interval`.
        let mut ticks = tokio::time::interval(period.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let dir = self.root_for_people();
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticks.tick() => {}
            }
            let result = tokio::select! {
                () = &mut stop => return,
                result = self.sweep_temp_files(sweep) => result,
            };
            match result {
                Ok(swept) => {
                    if swept.removed > 0 {
                        info!(storage.dir = %dir, sweep.removed = swept.removed, sweep.examined = swept.examined, sweep.complete = swept.complete, "removed stale temporary files");
                    } else {
                        debug!(storage.dir = %dir, sweep.examined = swept.examined, sweep.complete = swept.complete, "no stale temporary file");
                    }
                    if let Some(error) = &swept.first_error {
                        warn!(storage.dir = %dir, sweep.failed = swept.failed, error = %error, "some stale temporary files could not be swept");
                    }
                }
                Err(error) => {
                    warn!(storage.dir = %dir, error = %error, "sweeping stale temporary files failed")
                }
            }
        }
    }

    /// Checks that a file can be written at the root (for readiness probes).
    pub async fn check_writable(&self) -> Result<()> {
        self.put(".ready-check", b"ok").await
    }

    /// Checks that a file can be written in `dir` (e.g. `qr`), creating it if needed.
    pub async fn check_writable_in(&self, dir: &str) -> Result<()> {
        self.put(
            &format!("{}/.ready-check", dir.trim_end_matches('/')),
            b"ok",
        )
        .await
    }
}

/// A stored file open for reading ([`Storage::open`]).
pub struct FileReader {
    /// Its length in bytes.
    pub len: u64,
    /// When it was last written, if the backend knows.
    pub modified: Option<SystemTime>,
    reader: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("len", &self.len)
            .field("modified", &self.modified)
            .finish_non_exhaustive()
    }
}

impl FileReader {
    /// The bytes, to read as they are needed.
    pub fn into_reader(self) -> std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> {
        self.reader
    }
}

/// A file being written piece by piece ([`Storage::create`]).
#[derive(Debug)]
pub struct FileWriter {
    /// Open until committed.
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    target: PathBuf,
    written: u64,
}

impl FileWriter {
    /// Appends `bytes` to the temporary file.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let file = self.file.as_mut().ok_or_else(|| StorageError::Io {
            op: "write",
            path: self.tmp.display().to_string(),
            source: std::io::Error::other("the file was committed"),
        })?;
        file.write_all(bytes)
            .await
            .map_err(io("write", &self.tmp))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// How many bytes were written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Fsyncs the temporary file, renames it into place and fsyncs the
    /// directory, as [`Storage::put`] does; on an error the temporary file is
    /// removed.
    pub async fn commit(mut self) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        // tokio's File writes in the background: flush waits for the last write.
        file.flush().await.map_err(io("write", &self.tmp))?;
        file.sync_all().await.map_err(io("sync", &self.tmp))?;
        drop(file);
        let (tmp, target) = (self.tmp.clone(), self.target.clone());
        let moved = tokio::task::spawn_blocking(move || {
            std::fs::rename(&tmp, &target).map_err(io("rename", &target))?;
            sync_dir(target.parent().unwrap_or(Path::new(".")))
        })
        .await
        .map_err(|e| StorageError::Io {
            op: "rename",
            path: self.target.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        if moved.is_ok() {
            // Renamed: nothing left for Drop to remove.
            self.tmp = PathBuf::new();
        }
        moved
    }
}

impl Drop for FileWriter {
    /// An abandoned write (an upload refused or cut off midway) leaves nothing.
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes to a temporary file beside the target (so the rename never crosses
/// filesystems), fsyncs it, renames it into place and fsyncs the directory.
fn write_local(root: &Path, target: &Path, bytes: &[u8]) -> Result<()> {
    let dir = target.parent().unwrap_or(root);
    write_renamed(dir, target, bytes)?;
    // The rename lives in the directory: until the directory is on disk, a
    // power cut can lose the new name while the row already says `ready`.
    sync_dir(dir)
}

/// [`write_local`] for a batch: every file fsynced and renamed, then each
/// directory fsynced once; a file's result is `Ok` only after its directory's
/// fsync succeeded.
fn write_local_many(root: &Path, files: Vec<(String, Vec<u8>)>) -> Vec<Result<()>> {
    let write = |(path, bytes): &(String, Vec<u8>)| {
        validate(path).and_then(|()| {
            let target = root.join(path);
            let dir = target.parent().unwrap_or(root).to_owned();
            write_renamed(&dir, &target, bytes).map(|()| dir)
        })
    };
    // A file's fsync waits on the disk, not the CPU: one after the other they
    // would cost a batch the sum of their waits, while fsyncs in flight
    // together share the filesystem's journal commits.
    let threads = files.len().clamp(1, PARALLEL_WRITES);
    let share = files.len().div_ceil(threads);
    let written: Vec<Result<PathBuf>> = if threads == 1 {
        files.iter().map(write).collect()
    } else {
        std::thread::scope(|scope| {
            let writers: Vec<_> = files
                .chunks(share.max(1))
                .map(|chunk| {
                    let writer = scope.spawn(move || chunk.iter().map(write).collect::<Vec<_>>());
                    (writer, chunk.len())
                })
                .collect();
            writers
                .into_iter()
                .flat_map(|(writer, len)| {
                    writer.join().unwrap_or_else(|_| {
                        (0..len)
                            .map(|_| {
                                Err(StorageError::Io {
                                    op: "write",
                                    path: String::new(),
                                    source: std::io::Error::other("a writer thread panicked"),
                                })
                            })
                            .collect()
                    })
                })
                .collect()
        })
    };
    let mut results: Vec<Result<()>> = Vec::with_capacity(files.len());
    // Each directory that received a file, with the files renamed into it.
    let mut dirs: Vec<(PathBuf, Vec<usize>)> = Vec::new();
    for (i, written) in written.into_iter().enumerate() {
        match written {
            Ok(dir) => {
                match dirs.iter_mut().find(|(d, _)| *d == dir) {
                    Some((_, files)) => files.push(i),
                    None => dirs.push((dir, vec![i])),
                }
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    for (dir, renamed) in dirs {
        if let Err(e) = sync_dir(&dir) {
            let (kind, text) = match &e {
                StorageError::Io { source, .. } => (source.kind(), source.to_string()),
                StorageError::InvalidPath(_) => (ErrorKind::Other, e.to_string()),
            };
            for i in renamed {
                results[i] = Err(io("sync directory", &dir)(std::io::Error::new(
                    kind,
                    text.clone(),
                )));
            }
        }
    }
    results
}

/// Files of one batch written (and fsynced) at once at most.
const PARALLEL_WRITES: usize = 16;

/// Creates `dir` durably if needed, writes `bytes` to a temporary file in it,
/// fsyncs that file and renames it to `target`; the directory itself is not
/// synced (the caller does, once per directory).
fn write_renamed(dir: &Path, target: &Path, bytes: &[u8]) -> Result<()> {
    create_dir_durably(dir)?;
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file");
    let tmp = dir.join(temp_name(name));
    let write = || {
        let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("sync", &tmp))?;
        std::fs::rename(&tmp, target).map_err(io("rename", target))
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// `create_dir_all`, then fsyncs the parent of every directory it created, so
/// a new directory's name survives a power cut like the file in it.
fn create_dir_durably(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    for created in missing {
        match created.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent)?,
            _ => sync_dir(Path::new("."))?,
        }
    }
    Ok(())
}

/// Makes a directory's entries (a rename, a new name) durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(test)]
    DIR_SYNCS.set(DIR_SYNCS.get() + 1);
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}

#[cfg(test)]
thread_local! {
    /// Directory fsyncs made on this thread, for the tests that count them.
    static DIR_SYNCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Windows cannot open a directory as a file; NTFS journals the rename.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

/// `.NAME.HHHHHHHHHHHHHHHH.tmp` (16 lowercase hex digits): hidden, beside its
/// target, and a name [`validate`] refuses, so the sweep takes only these.
fn temp_name(name: &str) -> String {
    format!(".{name}.{:016x}.tmp", rand::random::<u64>())
}

fn is_temp_name(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    let Some((target, token)) = inner.rsplit_once('.') else {
        return false;
    };
    !target.is_empty()
        && token.len() == 16
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Where an entry-limited sweep stopped, for the next one to go on from.
#[derive(Debug, Default)]
struct Cursor {
    /// Directories still to list; the last is listed next. Empty: start at the root.
    dirs: Vec<PathBuf>,
    /// Entries of the last directory already looked at by an earlier sweep.
    skip: u64,
}

/// Walks the tree depth first from `cursor` without following symbolic
/// links, removing stale temporary files, and stops after `sweep.max_entries`
/// entries, returning where the next sweep goes on. Skipping what an earlier
/// sweep looked at costs a directory read but no `stat` or `unlink`; entries
/// that moved meanwhile are caught by the next pass.
fn sweep_local(root: &Path, sweep: Sweep, mut cursor: Cursor) -> (Result<Swept>, Cursor) {
    let mut swept = Swept::default();
    let fail = |swept: &mut Swept, e: StorageError| {
        swept.failed += 1;
        swept.first_error.get_or_insert(e);
    };
    if cursor.dirs.is_empty() {
        cursor = Cursor {
            dirs: vec![root.to_owned()],
            skip: 0,
        };
    }
    let now = SystemTime::now();
    while let Some(dir) = cursor.dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Gone meanwhile, or a root not created yet.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                cursor.skip = 0;
                continue;
            }
            Err(e) if dir == root => {
                return (Err(io("list directory", &dir)(e)), Cursor::default());
            }
            Err(e) => {
                fail(&mut swept, io("list directory", &dir)(e));
                cursor.skip = 0;
                continue;
            }
        };
        // Entries looked at, not counting those removed: where the next sweep resumes.
        let mut seen = 0;
        let mut subdirs = Vec::new();
        for entry in entries {
            if seen < cursor.skip {
                seen += 1;
                continue;
            }
            if swept.examined >= sweep.max_entries.max(1) {
                // Come back to this directory after the subdirectories found so far.
                cursor.dirs.extend(subdirs);
                cursor.dirs.push(dir);
                cursor.skip = seen;
                return (Ok(swept), cursor);
            }
            seen += 1;
            swept.examined += 1;
            let Ok(entry) = entry else { continue };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                subdirs.push(entry.path());
                continue;
            }
            if !kind.is_file() || !entry.file_name().to_str().is_some_and(is_temp_name) {
                continue;
            }
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| {
                    // A time in the future (a clock step) counts as young.
                    now.duration_since(modified)
                        .is_ok_and(|age| age >= sweep.older_than)
                });
            if !stale {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    swept.removed += 1;
                    seen -= 1;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => seen -= 1,
                Err(e) => fail(&mut swept, io("remove", &entry.path())(e)),
            }
        }
        cursor.dirs.extend(subdirs);
        cursor.skip = 0;
    }
    swept.complete = true;
    (Ok(swept), Cursor::default())
}

/// Relative, no `..`, a conservative alphabet: paths come from job payloads.
/// Nor a segment the sweep would take for a temporary file.
fn validate(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.len() <= 512
        && !path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !is_temp_name(seg));
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidPath(path.to_owned()))
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.display().to_string();
    move |source| StorageError::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_put_file_reads_back_and_a_second_put_replaces_it_leaving_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::local(dir.path());
        s.put("qr/a.png", b"first").await.expect("put");
        s.put("qr/a.png", b"second").await.expect("put again");
        assert_eq!(
            s.get("qr/a.png").await.expect("get"),
            Some(b"second".to_vec())
        );
        assert!(s.exists("qr/a.png").await.expect("exists"));
        assert_eq!(s.get("qr/none.png").await.expect("get"), None);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("qr"))
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        assert_eq!(names, vec!["a.png".to_owned()]);
        assert!(s.locate("qr/a.png").ends_with("/qr/a.png"));
    }

    #[tokio::test]
    async fn a_batch_writes_every_good_file_and_fails_only_the_bad_ones_leaving_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A file where the `blocked` directory should be.
        std::fs::write(dir.path().join("blocked"), b"not a dir").expect("write");
        let s = Storage::local(dir.path());
        s.put("qr/a.png", b"old").await.expect("put");
        let results = s
            .put_many(vec![
                ("qr/a.png".into(), b"new a".to_vec()),
                ("../escape.png".into(), b"x".to_vec()),
                ("qr/b.png".into(), b"b".to_vec()),
                ("blocked/c.png".into(), b"c".to_vec()),
                ("other/d.png".into(), b"d".to_vec()),
            ])
            .await;
        assert_eq!(results.len(), 5);
        assert!(
            results[0].is_ok() && results[2].is_ok() && results[4].is_ok(),
            "{results:?}"
        );
        assert!(
            matches!(results[1], Err(StorageError::InvalidPath(_))),
            "{results:?}"
        );
        let blocked = results[3].as_ref().expect_err("blocked");
        assert!(blocked.to_string().contains("blocked"), "{blocked}");
        assert_eq!(
            s.get("qr/a.png").await.expect("get"),
            Some(b"new a".to_vec())
        );
        assert_eq!(s.get("qr/b.png").await.expect("get"), Some(b"b".to_vec()));
        assert_eq!(
            s.get("other/d.png").await.expect("get"),
            Some(b"d".to_vec())
        );
        assert_eq!(
            files_under(dir.path()),
            ["blocked", "other/d.png", "qr/a.png", "qr/b.png"]
        );
        assert!(s.put_many(Vec::new()).await.is_empty());
    }

    #[test]
    fn a_batch_syncs_each_directory_once_and_a_single_put_syncs_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("q")).expect("q");
        std::fs::create_dir_all(dir.path().join("r")).expect("r");
        DIR_SYNCS.set(0);
        let results = write_local_many(
            dir.path(),
            (0..10)
                .map(|i| {
                    (
                        format!("{}/{i}.png", if i % 2 == 0 { "q" } else { "r" }),
                        vec![i],
                    )
                })
                .collect(),
        );
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(DIR_SYNCS.get(), 2, "one fsync per directory, not per file");
        DIR_SYNCS.set(0);
        write_local(dir.path(), &dir.path().join("q/x.png"), b"x").expect("put");
        assert_eq!(DIR_SYNCS.get(), 1);
    }

    #[tokio::test]
    async fn an_opened_file_reads_back_whole_with_its_length_and_a_missing_one_is_none() {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::local(dir.path());
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        s.put("photos/a.jpg", &bytes).await.expect("put");
        let file = s.open("photos/a.jpg").await.expect("open").expect("a file");
        assert_eq!(file.len, 200_000);
        assert!(file.modified.is_some());
        let mut read = Vec::new();
        file.into_reader()
            .read_to_end(&mut read)
            .await
            .expect("read");
        assert!(read == bytes, "the bytes read back differ");
        assert!(s.open("photos/none.jpg").await.expect("open").is_none());
        assert!(matches!(
            s.open("../a.jpg").await,
            Err(StorageError::InvalidPath(_))
        ));
    }

    #[tokio::test]
    async fn paths_that_escape_the_root_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::local(dir.path());
        for bad in [
            "../x.png",
            "/etc/passwd",
            "a/../../b",
            "",
            "a//b",
            "a b.png",
            "./a",
        ] {
            let err = s.put(bad, b"x").await.expect_err(bad);
            assert!(matches!(err, StorageError::InvalidPath(_)), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn a_directory_that_cannot_be_written_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A file where the directory should be: creating the directory fails even as root.
        std::fs::write(dir.path().join("qr"), b"not a dir").expect("write");
        let s = Storage::local(dir.path());
        let err = s.put("qr/a.png", b"x").await.expect_err("must fail");
        assert!(err.to_string().contains("qr"), "{err}");
        assert!(s.check_writable().await.is_ok());
        assert!(
            s.check_writable_in("qr").await.is_err(),
            "readiness sees the blocked dir"
        );
        assert!(s.check_writable_in("photos").await.is_ok());
    }

    /// Writes `name` under `root` with a modification time `age` ago, as a
    /// writer that started then would have left it.
    fn file_aged(root: &Path, name: &str, age: std::time::Duration) {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
        let file = std::fs::File::create(&path).expect("create");
        let when = std::time::SystemTime::now() - age;
        file.set_modified(when).expect("set the modification time");
    }

    /// Every file under `root`, relative to it, sorted.
    fn files_under(root: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut dirs = vec![root.to_owned()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read dir") {
                let entry = entry.expect("entry");
                if entry.file_type().expect("type").is_dir() {
                    dirs.push(entry.path());
                } else {
                    let rel = entry
                        .path()
                        .strip_prefix(root)
                        .expect("under root")
                        .to_owned();
                    found.push(rel.display().to_string());
                }
            }
        }
        found.sort();
        found
    }

    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

    #[tokio::test]
    async fn a_sweep_removes_stale_temporary_files_anywhere_under_the_root_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // Left by writers killed an hour ago (the naming `put` has always used).
        file_aged(root, "qr/.V-1.png.0123456789abcdef.tmp", HOUR);
        file_aged(root, ".ready-check.fedcba9876543210.tmp", HOUR);
        file_aged(root, "photos/2024/05/.p.svg.00000000deadbeef.tmp", HOUR);
        // A write in progress, finished files and other people's names stay.
        file_aged(
            root,
            "qr/.V-2.png.1111111111111111.tmp",
            std::time::Duration::ZERO,
        );
        file_aged(root, "qr/V-1.png", HOUR);
        file_aged(root, "qr/.V-3.png.tmp", HOUR);
        file_aged(root, "qr/notes.tmp", HOUR);
        file_aged(root, "qr/.V-4.png.0123456789ABCDEF.tmp", HOUR);
        file_aged(root, "qr/.V-5.png.0123456789abcde.tmp", HOUR);

        let swept = Storage::local(root)
            .sweep_temp_files(Sweep {
                older_than: HOUR / 2,
                ..Sweep::default()
            })
            .await
            .expect("sweep");

        assert_eq!((swept.removed, swept.failed), (3, 0), "{swept:?}");
        assert!(swept.complete, "{swept:?}");
        assert_eq!(
            files_under(root),
            vec![
                "qr/.V-2.png.1111111111111111.tmp",
                "qr/.V-3.png.tmp",
                "qr/.V-4.png.0123456789ABCDEF.tmp",
                "qr/.V-5.png.0123456789abcde.tmp",
                "qr/V-1.png",
                "qr/notes.tmp",
            ]
        );
    }

    #[tokio::test]
    async fn a_sweep_looks_at_no_more_entries_than_its_limit_and_the_next_goes_on_from_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["qr", "photos/a", "photos/b"] {
            for i in 0..5 {
                file_aged(
                    dir.path(),
                    &format!("{d}/.{i}.png.0123456789abcdef.tmp"),
                    HOUR,
                );
            }
        }
        let storage = Storage::local(dir.path());
        let limited = Sweep {
            older_than: HOUR / 2,
            max_entries: 4,
        };

        let mut removed = 0;
        let mut sweeps = 0;
        loop {
            let swept = storage.sweep_temp_files(limited).await.expect("sweep");
            assert!(swept.examined <= 4, "{swept:?}");
            removed += swept.removed;
            sweeps += 1;
            if swept.complete {
                break;
            }
            assert!(sweeps < 20, "the sweeps go on from where they stopped");
        }
        assert!(sweeps > 1, "the limit cut the first sweep short");
        assert_eq!(removed, 15);
        assert!(files_under(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn a_sweep_of_a_root_not_created_yet_removes_nothing_and_is_no_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let swept = Storage::local(dir.path().join("not-yet"))
            .sweep_temp_files(Sweep::default())
            .await
            .expect("no error");
        assert_eq!((swept.removed, swept.examined), (0, 0));
        assert!(swept.complete);
    }

    #[tokio::test]
    async fn the_periodic_sweep_runs_at_once_and_again_until_stopped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        file_aged(root, "qr/.a.png.0123456789abcdef.tmp", HOUR);
        let storage = Storage::local(root);
        let stop = tokio::sync::Notify::new();
        let sweeper = storage.sweep_temp_files_every(
            std::time::Duration::from_millis(10),
            Sweep {
                older_than: HOUR / 2,
                ..Sweep::default()
            },
            stop.notified(),
        );
        let checks = async {
            wait_until("the first temporary file is removed", || {
                files_under(root).is_empty()
            })
            .await;
            file_aged(root, "qr/.b.png.0123456789abcdef.tmp", HOUR);
            wait_until("the second temporary file is removed", || {
                files_under(root).is_empty()
            })
            .await;
            stop.notify_one();
        };
        // The sweeper returning is what proves `stop` ends it.
        tokio::join!(sweeper, checks);
    }

    async fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting until {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_path_that_looks_like_a_temporary_file_is_refused_so_the_sweep_never_takes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::local(dir.path());
        for bad in [
            "qr/.a.png.0123456789abcdef.tmp",
            ".x.0123456789abcdef.tmp/a.png",
        ] {
            let err = s.put(bad, b"x").await.expect_err(bad);
            assert!(matches!(err, StorageError::InvalidPath(_)), "{bad}: {err}");
        }
        s.put("qr/.a.png.tmp", b"x")
            .await
            .expect("not the temporary pattern");
    }

    #[tokio::test]
    async fn a_put_whose_caller_gives_up_midway_still_leaves_the_whole_file_and_no_temporary_file()
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::local(dir.path());
        let bytes = vec![7u8; 1 << 20];
        // One poll starts the write, then the future is dropped: what a job
        // timeout or shutdown does to a handler.
        let _ = tokio::time::timeout(std::time::Duration::ZERO, s.put("qr/a.png", &bytes)).await;
        let target = dir.path().join("qr/a.png");
        wait_until("the write finishes", || {
            std::fs::read(&target).is_ok_and(|b| b == bytes)
        })
        .await;
        assert_eq!(files_under(dir.path()), vec!["qr/a.png"]);
    }

    #[tokio::test]
    async fn a_file_written_piece_by_piece_appears_whole_on_commit_and_a_dropped_one_leaves_nothing()
     {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::local(dir.path());
        let mut w = storage.create("up/a.bin").await.expect("create");
        w.write(b"hello ").await.expect("write");
        w.write(b"world").await.expect("write");
        assert_eq!(w.written(), 11);
        assert_eq!(storage.get("up/a.bin").await.expect("get"), None);
        assert_eq!(files_under(dir.path()).len(), 1, "one temporary file");
        w.commit().await.expect("commit");
        assert_eq!(
            storage.get("up/a.bin").await.expect("get").as_deref(),
            Some(&b"hello world"[..])
        );
        assert_eq!(files_under(dir.path()), vec!["up/a.bin"]);

        let mut w = storage.create("up/b.bin").await.expect("create");
        w.write(b"half").await.expect("write");
        drop(w);
        assert_eq!(
            files_under(dir.path()),
            vec!["up/a.bin"],
            "no temporary file left"
        );
        assert!(storage.create("../escape").await.is_err());
    }

    #[tokio::test]
    async fn a_deleted_file_is_gone_and_deleting_it_again_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::local(dir.path());
        s.put("photos/a.jpg", b"x").await.expect("put");
        assert!(s.delete("photos/a.jpg").await.expect("delete"));
        assert_eq!(s.get("photos/a.jpg").await.expect("get"), None);
        assert!(!s.delete("photos/a.jpg").await.expect("again"));
        assert!(matches!(
            s.delete("../a.jpg").await,
            Err(StorageError::InvalidPath(_))
        ));
    }

    #[tokio::test]
    async fn a_put_creates_missing_directories_down_from_a_missing_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("storage");
        let s = Storage::local(&root);
        s.put("photos/2024/05/a.png", b"nested").await.expect("put");
        assert_eq!(
            s.get("photos/2024/05/a.png").await.expect("get"),
            Some(b"nested".to_vec())
        );
        assert_eq!(files_under(&root), vec!["photos/2024/05/a.png"]);
    }

    #[test]
    fn syncing_a_directory_that_cannot_be_opened_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        sync_dir(dir.path()).expect("an existing directory syncs");
        let gone = dir.path().join("gone");
        let err = sync_dir(&gone).expect_err("must fail");
        assert!(
            matches!(
                &err,
                StorageError::Io {
                    op: "sync directory",
                    ..
                }
            ) && err.to_string().contains("gone"),
            "{err}"
        );
    }
}
