//! Temporary files of writers killed mid-write are swept from the storage.

use std::path::Path;
use std::time::{Duration, SystemTime};

use queue_core::testing::eventually;

use crate::support::{QrWorld, TestApp, list_dir};

const HOUR: Duration = Duration::from_secs(3600);

/// Writes `path` with a modification time `age` ago, as a writer that started
/// then and was killed before its rename would have left it.
fn file_aged(path: &Path, age: Duration) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
    let file = std::fs::File::create(path).expect("create");
    file.set_modified(SystemTime::now() - age)
        .expect("set the modification time");
}

#[tokio::test]
async fn stale_temporary_files_are_removed_at_start_and_periodically_and_nothing_else_is() {
    let app = TestApp::new().await;
    let stale = app.storage_path("qr/.V-1.png.0123456789abcdef.tmp");
    let nested = app.storage_path("photos/2024/.p.png.fedcba9876543210.tmp");
    let writing = app.storage_path("qr/.V-2.png.1111111111111111.tmp");
    let kept = app.storage_path("qr/V-3.png");
    file_aged(&stale, HOUR);
    file_aged(&nested, HOUR);
    file_aged(&writing, Duration::ZERO);
    file_aged(&kept, HOUR);

    let worker = app.spawn_worker().await;
    eventually("the stale temporary files are removed", async || {
        (!stale.exists() && !nested.exists()).then_some(())
    })
    .await;

    // One left by a writer killed while this worker runs goes too.
    let later = app.storage_path("qr/.V-4.png.2222222222222222.tmp");
    file_aged(&later, HOUR);
    eventually("the later stale temporary file is removed", async || {
        (!later.exists()).then_some(())
    })
    .await;

    assert_eq!(
        list_dir(&app.storage_path("qr")),
        vec![".V-2.png.1111111111111111.tmp", "V-3.png"],
        "a write in progress and finished files stay"
    );

    worker.stop().await;
    app.finish().await;
}
