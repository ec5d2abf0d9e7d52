/// Errors of the queue engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis connection pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("cannot reach redis at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("invalid queue name {0:?}: use 1 to 100 characters of A-Z a-z 0-9 . _ -")]
    InvalidQueueName(String),
    #[error("invalid key prefix {0:?}: use 1 to 64 characters of A-Z a-z 0-9 . _ - :")]
    InvalidPrefix(String),
    #[error("queue {0:?} does not exist (no producer or worker has used it)")]
    NoSuchQueue(String),
    #[error("queue {queue:?} has no priority lanes; enqueue with Priority::Normal")]
    NoPriorityLanes { queue: String },
    #[error("dead letter {id:?} not found in queue {queue:?}")]
    NoSuchDeadLetter { queue: String, id: String },
    #[error("dead letter {id:?} cannot be retried: its envelope does not decode ({reason})")]
    Undecodable { id: String, reason: String },
    #[error("job {id:?} of queue {queue:?} is {state}, so it cannot be {action}")]
    JobState {
        queue: String,
        id: String,
        state: crate::JobState,
        action: &'static str,
    },
    #[error("invalid cursor {0:?}: pass the `next` of the previous page as it was")]
    InvalidCursor(String),
    #[error("invalid worker config: {0}")]
    InvalidConfig(String),
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    #[error("unexpected reply from redis: {0}")]
    Parse(#[from] redis::ParsingError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
