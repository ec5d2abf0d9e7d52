//! A queue: its name, keys and lanes.

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::keys::{self, QueueKeys};
use crate::{Error, Result};

/// Priority of a job on a queue with priority lanes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "high" => Ok(Priority::High),
            "normal" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            other => Err(format!("unknown priority {other:?} (high, normal, low)")),
        }
    }
}

/// Whether a queue has one stream or one stream per priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lanes {
    Single,
    /// High, normal and low streams; workers read the higher lanes first.
    Priority,
}

impl Lanes {
    pub(crate) fn count(self) -> usize {
        match self {
            Lanes::Single => 1,
            Lanes::Priority => 3,
        }
    }

    pub(crate) fn from_count(n: usize) -> Self {
        if n >= 3 {
            Lanes::Priority
        } else {
            Lanes::Single
        }
    }
}

/// A named queue under a key prefix. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    name: String,
    keys: QueueKeys,
    lanes: Lanes,
    /// Lane streams in read order (highest priority first).
    streams: Vec<String>,
    /// Set once this process has written the queue into the registry.
    registered: OnceCell<()>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.inner.name)
            .field("lanes", &self.inner.lanes)
            .finish()
    }
}

impl Queue {
    pub(crate) fn new(prefix: &str, name: &str, lanes: Lanes) -> Result<Self> {
        keys::validate_queue_name(name)?;
        let keys = QueueKeys::new(prefix, name);
        let streams = match lanes {
            Lanes::Single => vec![keys.stream(None)],
            Lanes::Priority => vec![
                keys.stream(Some("high")),
                keys.stream(None),
                keys.stream(Some("low")),
            ],
        };
        Ok(Self {
            inner: Arc::new(Inner {
                prefix: prefix.to_owned(),
                name: name.to_owned(),
                keys,
                lanes,
                streams,
                registered: OnceCell::new(),
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn keys(&self) -> &QueueKeys {
        &self.inner.keys
    }

    pub fn lanes(&self) -> Lanes {
        self.inner.lanes
    }

    /// Lane streams in read order.
    pub(crate) fn streams(&self) -> &[String] {
        &self.inner.streams
    }

    /// Index of a priority's stream in [`Queue::streams`].
    pub(crate) fn lane_of(&self, priority: Priority) -> Result<usize> {
        match (self.inner.lanes, priority) {
            (Lanes::Single, Priority::Normal) => Ok(0),
            (Lanes::Single, _) => Err(Error::NoPriorityLanes {
                queue: self.inner.name.clone(),
            }),
            (Lanes::Priority, Priority::High) => Ok(0),
            (Lanes::Priority, Priority::Normal) => Ok(1),
            (Lanes::Priority, Priority::Low) => Ok(2),
        }
    }

    /// Index of the lane a name from [`Queue::lane_name`] refers to; unknown names
    /// and priorities the queue does not have map to its normal lane.
    pub(crate) fn lane_by_name(&self, name: &str) -> usize {
        let priority = name.parse().unwrap_or(Priority::Normal);
        self.lane_of(priority).unwrap_or_else(|_| {
            self.lane_of(Priority::Normal)
                .expect("every queue has a normal lane")
        })
    }

    /// Human name of a lane index.
    pub(crate) fn lane_name(&self, lane: usize) -> &'static str {
        match (self.inner.lanes, lane) {
            (Lanes::Priority, 0) => "high",
            (Lanes::Priority, 2) => "low",
            _ => "normal",
        }
    }

    /// Writes the queue into the registry once per process, so operators can list it.
    pub(crate) async fn register(&self, conn: &mut impl redis::aio::ConnectionLike) -> Result<()> {
        let registry = self.registry_key();
        self.inner
            .registered
            .get_or_try_init(|| async {
                redis::cmd("HSET")
                    .arg(&registry)
                    .arg(&self.inner.name)
                    .arg(self.inner.lanes.count())
                    .query_async::<()>(conn)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        Ok(())
    }

    /// Writes the queue into the registry again, whatever this process did
    /// before: after Redis lost its data, a live queue must be listed again.
    pub(crate) async fn register_again(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
    ) -> Result<()> {
        redis::cmd("HSET")
            .arg(self.registry_key())
            .arg(&self.inner.name)
            .arg(self.inner.lanes.count())
            .query_async::<()>(conn)
            .await
            .map_err(Error::from)
    }

    pub(crate) fn registry_key(&self) -> String {
        keys::registry(&self.inner.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_names_map_back_to_their_lanes() {
        let p = Queue::new("rsq", "pay", Lanes::Priority).expect("queue");
        for lane in 0..3 {
            assert_eq!(p.lane_by_name(p.lane_name(lane)), lane);
        }
        let s = Queue::new("rsq", "qr", Lanes::Single).expect("queue");
        assert_eq!(
            s.lane_by_name("high"),
            0,
            "a single-lane queue has only lane 0"
        );
        assert_eq!(
            p.lane_by_name("bogus"),
            1,
            "unknown names go to the normal lane"
        );
    }
}
