//! Wake-ups for readers of a job's events: a reader waits until an event of its job may have
//! been recorded, then reads the rows after the last one it saw. The rows are the truth; a
//! wake-up only says when to look, so a lost or spurious one costs latency, never an event.
//!
//! PostgreSQL: one LISTEN connection per store (shared by its clones, started by the first
//! reader and closed once no reader is left) fans the `techpack_job_events` notifications out
//! to every reader; a job's events and its state changes notify it, whichever process wrote
//! them. SQLite: the store's own writes wake its readers at once; writes of another process on
//! the same file are seen at the next poll.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::broadcast;
use uuid::Uuid;

/// The PostgreSQL channel a job's events and state changes notify; the payload is the job id.
pub const JOB_EVENTS_CHANNEL: &str = "techpack_job_events";

/// The id a wake-up for every job carries (after a reconnect, when notifications may be lost).
const EVERY_JOB: Uuid = Uuid::nil();

/// How many wake-ups may wait for a slow reader before it is told it lagged (and looks).
const FEED_CAPACITY: usize = 1024;

/// How long the PostgreSQL listener waits before trying again after losing its connection.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// How often an idle PostgreSQL listener checks whether it still has readers.
const IDLE_CHECK: Duration = Duration::from_secs(30);

/// The wake-ups of one store, shared by its clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobEventFeed {
    sender: Arc<Mutex<Option<broadcast::Sender<Uuid>>>>,
}

impl JobEventFeed {
    /// Wakes this process's readers of `job_id` (after a write of this store has committed).
    pub(crate) fn publish(&self, job_id: Uuid) {
        if let Some(sender) = self.lock().as_ref() {
            // No reader is no error.
            let _ = sender.send(job_id);
        }
    }

    /// A waker fed by this store's own writes, polling every `poll` for other processes'.
    pub(crate) fn local_waker(&self, poll: Duration) -> JobEventWaker {
        let mut sender = self.lock();
        let sender = sender.get_or_insert_with(|| broadcast::channel(FEED_CAPACITY).0);
        JobEventWaker {
            receiver: Some(sender.subscribe()),
            poll,
        }
    }

    /// A waker fed by PostgreSQL notifications, starting the store's listener when it has none.
    pub(crate) fn postgres_waker(&self, pool: &PgPool, poll: Duration) -> JobEventWaker {
        let mut guard = self.lock();
        let sender = match guard.as_ref() {
            Some(sender) => sender.clone(),
            None => {
                let sender = broadcast::channel(FEED_CAPACITY).0;
                *guard = Some(sender.clone());
                tokio::spawn(listen(pool.clone(), sender.clone(), self.clone()));
                sender
            }
        };
        JobEventWaker {
            receiver: Some(sender.subscribe()),
            poll,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<broadcast::Sender<Uuid>>> {
        // A panic while holding this lock leaves nothing half-written: the value is one Option.
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends the listener's feed when nobody reads it any more; the next reader starts another.
    /// Checked under the lock that readers subscribe under, so none subscribes to a feed that
    /// is going away.
    fn close_if_unread(&self, sender: &broadcast::Sender<Uuid>) -> bool {
        let mut guard = self.lock();
        if sender.receiver_count() > 0 {
            return false;
        }
        if guard
            .as_ref()
            .is_some_and(|current| current.same_channel(sender))
        {
            *guard = None;
        }
        true
    }
}

/// The PostgreSQL listener: passes each notification's job id on until no reader is left.
async fn listen(pool: PgPool, sender: broadcast::Sender<Uuid>, feed: JobEventFeed) {
    let mut listener: Option<PgListener> = None;
    loop {
        let Some(listening) = listener.as_mut() else {
            match connect(&pool).await {
                Ok(fresh) => {
                    listener = Some(fresh);
                    // Whatever was recorded before LISTEN took effect sent nothing anyone heard.
                    let _ = sender.send(EVERY_JOB);
                }
                Err(error) => {
                    tracing::warn!(%error, "listening for job events; readers poll meanwhile");
                    if feed.close_if_unread(&sender) {
                        return;
                    }
                    tokio::time::sleep(RECONNECT_DELAY).await;
                }
            }
            continue;
        };
        tokio::select! {
            received = listening.try_recv() => match received {
                Ok(Some(notification)) => {
                    let job = notification.payload().parse().unwrap_or(EVERY_JOB);
                    if sender.send(job).is_err() && feed.close_if_unread(&sender) {
                        return;
                    }
                }
                // The connection dropped and was re-established: notifications may be lost.
                Ok(None) => {
                    let _ = sender.send(EVERY_JOB);
                }
                Err(error) => {
                    tracing::warn!(%error, "the job events listener lost its connection");
                    listener = None;
                }
            },
            _ = tokio::time::sleep(IDLE_CHECK) => {
                if feed.close_if_unread(&sender) {
                    return;
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(JOB_EVENTS_CHANNEL).await?;
    Ok(listener)
}

/// Waits for a job's next events; made by [`crate::JobStore::job_event_waker`]. Make it before
/// reading the events, so that an event recorded between the read and the wait still wakes it.
#[derive(Debug)]
pub struct JobEventWaker {
    receiver: Option<broadcast::Receiver<Uuid>>,
    poll: Duration,
}

impl JobEventWaker {
    /// Returns when an event or state change of `job_id` may have been recorded, or after the
    /// store's poll period at the latest (writes no notification reaches: another process on
    /// SQLite, a notification lost while PostgreSQL reconnected). May return early.
    pub async fn wait(&mut self, job_id: Uuid) {
        let poll = self.poll;
        let Some(receiver) = self.receiver.as_mut() else {
            tokio::time::sleep(poll).await;
            return;
        };
        let woken = async {
            loop {
                match receiver.recv().await {
                    Ok(job) if job == job_id || job == EVERY_JOB => return true,
                    Ok(_) => continue,
                    // Wake-ups were dropped, this job's maybe among them: look.
                    Err(broadcast::error::RecvError::Lagged(_)) => return true,
                    Err(broadcast::error::RecvError::Closed) => return false,
                }
            }
        };
        match tokio::time::timeout(poll, woken).await {
            Ok(true) | Err(_) => {}
            Ok(false) => {
                // The feed ended (its listener gave up): poll from now on.
                self.receiver = None;
                tokio::time::sleep(poll).await;
            }
        }
    }
}
