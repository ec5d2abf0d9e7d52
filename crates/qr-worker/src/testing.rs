//! Test support (feature `testing`) for crates whose tests need a running QR
//! worker (this one's and the gateway's): its config pointed at a test's Redis
//! prefix, database and storage directory with fast settings, starting it on
//! port 0, and reading back the QR code of a PNG.

use std::path::Path;
use std::time::Duration;

use service::testing::Running;

use crate::{Config, RenderOptions};

/// The config `main` would build, pointed at the test's Redis key prefix,
/// database and storage directory, with millisecond intervals and the health
/// port picked by the system.
pub fn config(redis_prefix: &str, database_url: &str, storage_dir: &Path) -> Config {
    Config {
        base: service::testing::base_config(redis_prefix, database_url),
        worker: service::testing::fast_worker_config(&jobs::QR),
        storage: service::config::StorageConfig {
            dir: storage_dir.to_owned(),
            temp_max_age: service::config::DEFAULT_STORAGE_TEMP_MAX_AGE,
            sweep_interval: Duration::from_millis(20),
        },
        // Sweeps a test can wait for.
        qr: RenderOptions::default(),
        batch: crate::BatchOptions::default(),
        // The shortest period a repeating job allows, and rows pending past
        // 500 ms: a test waits seconds, not half a minute, for a repair.
        reconcile: service::config::ReconcileConfig {
            interval: Duration::from_secs(1),
            after: Duration::from_millis(500),
            batch: crate::config::DEFAULT_RECONCILE_BATCH,
        },
    }
}

/// Starts the worker in the test's runtime exactly as `main` runs it; stop it
/// with [`Running::stop`] (dropping it cancels it too).
pub async fn spawn(config: Config) -> Running {
    Running::spawn(crate::start(config).await.expect("the qr worker starts"))
}

/// The text of the one QR code in a PNG image.
pub fn decode_qr_png(png: &[u8]) -> String {
    let image = image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .expect("a valid PNG")
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code in the image");
    grids[0].decode().expect("the QR code decodes").1
}
