//! Word that a run changed: the recorder says so after each write, and the runs' live streams
//! read the store at once instead of at their next poll. On PostgreSQL the store itself says
//! so too ([`hear_store`]), for runs held by the command line or another console; on SQLite
//! those are read on the streams' timer. Only runs someone follows here have a channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::watch;

type Channels = Mutex<HashMap<String, Weak<watch::Sender<u64>>>>;

fn channels() -> &'static Channels {
    static CHANNELS: OnceLock<Channels> = OnceLock::new();
    CHANNELS.get_or_init(Default::default)
}

/// A follower's view of one run's changes; the channel lives as long as one follower does.
pub struct Watch {
    // Keeps the channel alive for the recorder to find.
    _sender: Arc<watch::Sender<u64>>,
    receiver: watch::Receiver<u64>,
}

impl Watch {
    /// Returns once the run changed since this was last asked (or since `watch`).
    pub async fn changed(&mut self) {
        // The sender lives in `self`: this cannot fail.
        let _ = self.receiver.changed().await;
    }
}

/// Starts watching run `id`'s changes.
pub fn watch(id: &str) -> Watch {
    let mut channels = channels()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let sender = match channels.get(id).and_then(Weak::upgrade) {
        Some(sender) => sender,
        None => {
            // Channels whose followers are all gone are dropped as new ones come.
            channels.retain(|_, sender| sender.strong_count() > 0);
            let sender = Arc::new(watch::Sender::new(0));
            channels.insert(id.to_owned(), Arc::downgrade(&sender));
            sender
        }
    };
    let receiver = sender.subscribe();
    Watch {
        _sender: sender,
        receiver,
    }
}

/// Says run `id` changed; nothing when no one in this process follows it.
pub fn touched(id: &str) {
    let sender = channels()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(id)
        .and_then(Weak::upgrade);
    if let Some(sender) = sender {
        sender.send_modify(|generation| *generation += 1);
    }
}

/// On PostgreSQL, passes on each run change the store announces (its triggers, see
/// `store::RUN_CHANGES_CHANNEL`) to this process's followers; returns at once on SQLite.
/// Runs until aborted; a lost connection is opened again by the listener, a second later.
pub async fn hear_store(store: crate::store::Store) {
    let mut listener = loop {
        match store.listener(crate::store::RUN_CHANGES_CHANNEL).await {
            Ok(Some(listener)) => break listener,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for run changes; followers poll meanwhile");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    loop {
        match listener.recv().await {
            Ok(notice) => touched(notice.payload()),
            Err(error) => {
                tracing::warn!(%error, "listening for run changes failed; trying again");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_follower_hears_of_its_run_and_not_of_others() {
        let mut watch = watch("run-a");
        touched("run-b");
        let quiet =
            tokio::time::timeout(std::time::Duration::from_millis(50), watch.changed()).await;
        assert!(quiet.is_err(), "a change of another run woke the follower");
        touched("run-a");
        tokio::time::timeout(std::time::Duration::from_secs(1), watch.changed())
            .await
            .expect("the follower heard of its run's change");
    }

    #[tokio::test]
    async fn the_channel_goes_with_its_last_follower() {
        drop(watch("run-gone"));
        touched("run-gone");
        let _other = watch("run-other");
        let channels = channels().lock().unwrap();
        assert!(!channels.contains_key("run-gone"));
    }
}
