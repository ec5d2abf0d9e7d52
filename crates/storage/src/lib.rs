#![doc = include_str!("../README.md")]

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

/// Errors of the storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid storage path {0:?}: use a relative path of A-Z a-z 0-9 . _ - / without ..")]
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

/// A place to keep files. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    backend: Arc<Backend>,
}

#[derive(Debug)]
enum Backend {
    Local { root: PathBuf },
}

impl Storage {
    /// Files under `root` (created on first write).
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Self {
            backend: Arc::new(Backend::Local { root: root.into() }),
        }
    }

    /// Writes `bytes` at `path` atomically: readers never see a partial file.
    pub async fn put(&self, path: &str, bytes: &[u8]) -> Result<()> {
        validate(path)?;
        match &*self.backend {
            Backend::Local { root } => {
                let target = root.join(path);
                let dir = target.parent().unwrap_or(root);
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(io("create directory", dir))?;
                let name = target
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("file");
                // Same directory as the target, so the rename never crosses filesystems.
                let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
                let write = async {
                    let mut f = tokio::fs::File::create(&tmp)
                        .await
                        .map_err(io("create", &tmp))?;
                    f.write_all(bytes).await.map_err(io("write", &tmp))?;
                    f.sync_all().await.map_err(io("sync", &tmp))?;
                    tokio::fs::rename(&tmp, &target)
                        .await
                        .map_err(io("rename", &target))
                };
                let result = write.await;
                if result.is_err() {
                    let _ = tokio::fs::remove_file(&tmp).await;
                }
                result
            }
        }
    }

    /// The file at `path`, or None when there is none.
    pub async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        validate(path)?;
        match &*self.backend {
            Backend::Local { root } => {
                let file = root.join(path);
                match tokio::fs::read(&file).await {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io("read", &file)(e)),
                }
            }
        }
    }

    pub async fn exists(&self, path: &str) -> Result<bool> {
        validate(path)?;
        match &*self.backend {
            Backend::Local { root } => tokio::fs::try_exists(root.join(path))
                .await
                .map_err(io("stat", &root.join(path))),
        }
    }

    /// Where `path` lives, for people: an absolute file name for the local backend.
    pub fn locate(&self, path: &str) -> String {
        match &*self.backend {
            Backend::Local { root } => {
                let root = std::path::absolute(root).unwrap_or_else(|_| root.clone());
                root.join(path).display().to_string()
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

/// Relative, no `..`, a conservative alphabet: paths come from job payloads.
fn validate(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.len() <= 512
        && !path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
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
}
