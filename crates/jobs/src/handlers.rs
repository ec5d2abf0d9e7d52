//! Typed handlers: a handler receives the decoded payload of its kind, and one
//! queue may carry several kinds, each routed to its own handler.
//!
//! [`Handlers`] is the `queue_core::Handler` of a queue: it looks the envelope's
//! `kind` up, decodes the payload into that kind's message and calls the handler
//! registered for it. A kind nobody registered, and a payload that does not
//! decode, are permanent errors: the runner dead-letters them at once, since no
//! retry can fix them.

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use queue_core::{DeadLettered, Handler, Job, JobError};

use crate::{JobKind, QueueSpec, decode};

/// Runs jobs of kind `J` with their payload already decoded.
///
/// Implemented for async closures `Fn(J, Job) -> Future<Output = Result<(), JobError>>`.
pub trait JobHandler<J: JobKind>: Send + Sync + 'static {
    fn handle(&self, payload: J, job: Job) -> impl Future<Output = Result<(), JobError>> + Send;

    /// Runs once a job of this kind was dead-lettered, by any path (see
    /// `queue_core::Handler::on_dead_letter`); `payload` is None when it did not
    /// decode. Retried until it returns Ok. By default it does nothing.
    fn on_dead_letter(
        &self,
        payload: Option<J>,
        letter: DeadLettered,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = (payload, letter);
        std::future::ready(Ok(()))
    }
}

impl<J, F, Fut> JobHandler<J> for F
where
    J: JobKind,
    F: Fn(J, Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send,
{
    fn handle(&self, payload: J, job: Job) -> impl Future<Output = Result<(), JobError>> + Send {
        self(payload, job)
    }
}

type Run = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
type Hook = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// One registered kind, with its payload type erased.
trait Route: Send + Sync {
    fn call(&self, job: Job) -> Run;
    fn dead_letter(&self, letter: DeadLettered) -> Hook;
}

struct Typed<J, H> {
    handler: Arc<H>,
    kind: PhantomData<fn() -> J>,
}

impl<J: JobKind, H: JobHandler<J>> Route for Typed<J, H> {
    fn call(&self, job: Job) -> Run {
        let handler = self.handler.clone();
        Box::pin(async move {
            let payload = decode::<J>(&job)?;
            handler.handle(payload, job).await
        })
    }

    fn dead_letter(&self, letter: DeadLettered) -> Hook {
        let handler = self.handler.clone();
        let payload = letter
            .envelope
            .as_ref()
            .and_then(|e| J::decode(e.payload.clone()).ok());
        Box::pin(async move { handler.on_dead_letter(payload, letter).await })
    }
}

/// The handlers of one queue, by job kind. Build it with [`Handlers::on`] for each
/// kind the worker takes, then hand it to the runner as its `Handler`.
///
/// ```
/// use jobs::{Handlers, v1};
/// use queue_core::{Job, JobError};
///
/// let handlers = Handlers::new(&jobs::PAYMENT_CHECKS)
///     .on(|check: v1::PaymentStatusCheck, _job: Job| async move {
///         let _ = check.payment();
///         Ok::<(), JobError>(())
///     })
///     .on(|cleanup: v1::PaymentCleanup, _job: Job| async move {
///         let _ = cleanup.day;
///         Ok::<(), JobError>(())
///     });
/// assert_eq!(handlers.kinds().collect::<Vec<_>>(), ["payment.check", "payment.cleanup"]);
/// ```
pub struct Handlers {
    queue: &'static QueueSpec,
    routes: BTreeMap<&'static str, Box<dyn Route>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("queue", &self.queue.name)
            .field("kinds", &self.routes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Handlers {
    /// No handler yet, for the jobs of `queue`.
    pub fn new(queue: &'static QueueSpec) -> Self {
        Self {
            queue,
            routes: BTreeMap::new(),
        }
    }

    /// Routes jobs of kind `J` to `handler`.
    ///
    /// # Panics
    /// When `J` belongs to another queue of the catalogue or already has a
    /// handler: both are wiring mistakes, found at startup rather than per job.
    pub fn on<J: JobKind>(mut self, handler: impl JobHandler<J>) -> Self {
        assert!(
            J::QUEUE.name == self.queue.name,
            "job kind {:?} belongs to queue {:?}, not {:?}",
            J::KIND,
            J::QUEUE.name,
            self.queue.name
        );
        let route = Typed::<J, _> {
            handler: Arc::new(handler),
            kind: PhantomData,
        };
        let previous = self.routes.insert(J::KIND, Box::new(route));
        assert!(
            previous.is_none(),
            "job kind {:?} has two handlers",
            J::KIND
        );
        self
    }

    /// The queue these handlers serve.
    pub fn queue(&self) -> &'static QueueSpec {
        self.queue
    }

    /// The kinds with a handler, in name order.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes.keys().copied()
    }
}

impl Handler for Handlers {
    fn handle(&self, job: Job) -> impl Future<Output = Result<(), JobError>> + Send {
        match self.routes.get(job.kind()) {
            Some(route) => route.call(job),
            None => self.unknown_kind(&job),
        }
    }

    /// The dead letter goes to the handler of its kind; a kind nobody handles
    /// (or an envelope that did not decode) has no row to mark.
    fn on_dead_letter(
        &self,
        letter: DeadLettered,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let hook: Hook = match self.routes.get(letter.kind()) {
            Some(route) => route.dead_letter(letter),
            None => Box::pin(std::future::ready(Ok(()))),
        };
        hook
    }
}

impl Handlers {
    fn unknown_kind(&self, job: &Job) -> Run {
        let error = JobError::permanent(anyhow::anyhow!(
            "no handler for job kind {:?} on queue {:?} (handled: {})",
            job.kind(),
            self.queue.name,
            self.kinds().collect::<Vec<_>>().join(", ")
        ));
        Box::pin(std::future::ready(Err(error)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    #[test]
    #[should_panic(expected = "belongs to queue \"qr\"")]
    fn a_kind_of_another_queue_is_refused_at_wiring_time() {
        let _ = Handlers::new(&crate::PHOTOS).on(|_: v1::GenerateQr, _: Job| async { Ok(()) });
    }

    #[test]
    #[should_panic(expected = "two handlers")]
    fn a_kind_cannot_have_two_handlers() {
        let _ = Handlers::new(&crate::QR)
            .on(|_: v1::GenerateQr, _: Job| async { Ok(()) })
            .on(|_: v1::GenerateQr, _: Job| async { Ok(()) });
    }
}
