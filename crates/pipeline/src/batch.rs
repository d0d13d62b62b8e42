//! Group commit for the writes of one run. Steps that finish together would otherwise queue
//! one commit at a time: behind SQLite's single writer, and on PostgreSQL behind the lock on
//! the collection row that every item and credit change updates, with a flush to disk each.
//! A [`Batcher`] writes whatever queued while its previous write ran as one store call, so a
//! wave of fifteen finished steps costs one or two commits instead of fifteen.

use std::future::Future;
use std::sync::Arc;

use techpack_store::StoreError;
use tokio::sync::{mpsc, oneshot};

use crate::error::{PipelineError, PipelineResult};

/// The most items one store call takes.
const MAX_BATCH: usize = 64;

/// How long the writer waits after the first item of a batch for others to join it.
const LINGER: std::time::Duration = std::time::Duration::from_millis(3);

type Reply<O> = oneshot::Sender<Result<O, StoreError>>;

/// Takes items one at a time and writes them in batches through one store call.
pub(crate) struct Batcher<I, O> {
    sender: mpsc::UnboundedSender<(I, Reply<O>)>,
}

impl<I, O> Batcher<I, O>
where
    I: Clone + Send + 'static,
    O: Send + 'static,
{
    /// Starts the writer task. `write` stores a batch in one transaction, all or none, and
    /// returns one output per item in order. The task ends when the batcher is dropped.
    pub(crate) fn spawn<W, F>(write: W) -> Self
    where
        W: Fn(Vec<I>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Vec<O>, StoreError>> + Send + 'static,
    {
        let (sender, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(Arc::new(write), queue));
        Self { sender }
    }

    /// Queues `item` and waits until it is written.
    pub(crate) async fn submit(&self, item: I) -> PipelineResult<O> {
        let stopped = || PipelineError::Task("the run's batched writer stopped".into());
        let (reply, answer) = oneshot::channel();
        self.sender.send((item, reply)).map_err(|_| stopped())?;
        Ok(answer.await.map_err(|_| stopped())??)
    }
}

async fn write_batches<I, O, W, F>(write: Arc<W>, mut queue: mpsc::UnboundedReceiver<(I, Reply<O>)>)
where
    I: Clone + Send + 'static,
    O: Send + 'static,
    W: Fn(Vec<I>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Vec<O>, StoreError>> + Send + 'static,
{
    while let Some(first) = queue.recv().await {
        // Steps that finish "together" finish within a few milliseconds of each other:
        // waiting that long for them costs a single step little and saves a commit per step
        // of a wave.
        tokio::time::sleep(LINGER).await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = queue.try_recv()
        {
            batch.push(next);
        }
        let items: Vec<I> = batch.iter().map(|(item, _)| item.clone()).collect();
        match write(items).await {
            Ok(outputs) if outputs.len() == batch.len() => {
                for ((_, reply), output) in batch.into_iter().zip(outputs) {
                    let _ = reply.send(Ok(output));
                }
            }
            Ok(outputs) => {
                let message = format!(
                    "a batched write returned {} results for {} items",
                    outputs.len(),
                    batch.len()
                );
                for (_, reply) in batch {
                    let _ = reply.send(Err(StoreError::Corrupt(message.clone())));
                }
            }
            Err(error) if batch.len() == 1 => {
                let (_, reply) = batch.pop().expect("one item");
                let _ = reply.send(Err(error));
            }
            Err(_) => {
                // One bad item must not sink the others: write each on its own, which also
                // gives each its own error.
                for (item, reply) in batch {
                    let result = write(vec![item]).await.and_then(|mut outputs| {
                        outputs
                            .pop()
                            .ok_or_else(|| StoreError::Corrupt("a write returned nothing".into()))
                    });
                    let _ = reply.send(result);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_that_queue_during_a_write_share_the_next_one() {
        let calls = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let seen = calls.clone();
        let batcher = Arc::new(Batcher::spawn(move |items: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(items.clone());
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok(items.iter().map(|item| item * 10).collect())
            }
        }));
        let mut tasks = Vec::new();
        for item in 0..10u32 {
            let batcher = batcher.clone();
            tasks.push(tokio::spawn(async move {
                if item > 0 {
                    // The first write is under way when the rest arrive.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                batcher.submit(item).await.unwrap()
            }));
        }
        for (item, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap(), item as u32 * 10);
        }
        let calls = calls.lock().unwrap();
        assert_eq!(
            calls.len(),
            2,
            "one write for the first, one for the rest: {calls:?}"
        );
        assert_eq!(calls[1].len(), 9);
    }

    #[tokio::test]
    async fn a_failed_batch_is_written_item_by_item_so_only_the_bad_item_fails() {
        let batcher = Arc::new(Batcher::spawn(|items: Vec<i32>| async move {
            if items.iter().any(|item| *item < 0) {
                return Err(StoreError::Conflict(format!("{items:?} holds a negative")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(items)
        }));
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.submit(1).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let good = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.submit(2).await }
        });
        let bad = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.submit(-3).await }
        });
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(good.await.unwrap().unwrap(), 2);
        let error = bad.await.unwrap().unwrap_err();
        assert!(
            error.to_string().contains("[-3] holds a negative"),
            "{error}"
        );
    }
}
