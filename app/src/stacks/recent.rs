//! What the engine told pages within the last second, shared by every viewer: fifty people
//! on a stack's page cost the engine one listing and one read of the logs a second, and none
//! of them waits for more than one call. Runs ask the engine themselves, never these.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::engine::EngineError;
use super::{ContainerStatus, LogLine, StackError};

/// How long an answer is shown before the engine is asked again.
const RECENT_FOR: Duration = Duration::from_secs(1);

/// One key's answer; its lock is held while the engine is asked, so the others wait for it.
type Slot<V> = Arc<tokio::sync::Mutex<Option<(Instant, V)>>>;

/// Answers by key, each kept for [`RECENT_FOR`].
pub(super) struct Recent<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
}

impl<K: Eq + Hash, V: Clone> Recent<K, V> {
    fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The answer given within the last second, else `ask`'s, kept for the next callers.
    pub(super) async fn get_or_ask<F: Future<Output = V>>(&self, key: K, ask: F) -> V {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let mut answer = slot.lock().await;
        if let Some((at, value)) = answer.as_ref() {
            if at.elapsed() < RECENT_FOR {
                return value.clone();
            }
        }
        let value = ask.await;
        *answer = Some((Instant::now(), value.clone()));
        value
    }

    fn forget(&self) {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }
}

/// A project's containers, by engine address and project.
type ContainersAnswer = Result<Vec<ContainerStatus>, EngineError>;
pub(super) static CONTAINERS: LazyLock<Recent<(String, String), ContainersAnswer>> =
    LazyLock::new(Recent::new);

/// The newest lines of a stack's logs: the stack found, service (empty for all), lines, errors only.
type LogsKey = (String, String, usize, bool);
pub(super) static LOGS: LazyLock<Recent<LogsKey, Result<Vec<LogLine>, StackError>>> =
    LazyLock::new(Recent::new);

/// Forgets every answer: a run that changed containers ended, or a stack's settings changed,
/// and the next page must show what they left.
pub fn forget() {
    CONTAINERS.forget();
    LOGS.forget();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn callers_within_a_second_share_one_answer_and_a_forget_asks_again() {
        let recent: Recent<&str, usize> = Recent::new();
        let asked = AtomicUsize::new(0);
        let ask = || async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            asked.fetch_add(1, Ordering::SeqCst) + 1
        };
        let answers =
            futures::future::join_all((0..50).map(|_| recent.get_or_ask("shop", ask()))).await;
        assert!(answers.iter().all(|answer| *answer == 1), "{answers:?}");
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "fifty callers, one question"
        );
        assert_eq!(
            recent.get_or_ask("other", ask()).await,
            2,
            "another key asks"
        );
        recent.forget();
        assert_eq!(
            recent.get_or_ask("shop", ask()).await,
            3,
            "asked again after forget"
        );
    }
}
