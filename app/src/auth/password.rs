//! Password hashing with Argon2id (m = 19 MiB, t = 2, p = 1), always off the async threads,
//! and never more at once than there are cores: each hash takes 19 MiB, so a burst of
//! sign-ins queues, and past the queue's limit is refused instead of taking the memory.

use std::sync::{Arc, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use super::AuthError;

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// How many password checks may wait for a core, beyond those running.
const QUEUE_LIMIT: usize = 32;

/// A place in the line for the password work; the work itself waits for a core.
pub struct Ticket {
    _place: OwnedSemaphorePermit,
}

struct Gate {
    /// Running and waiting together.
    places: Arc<Semaphore>,
    /// Running: one per core.
    cores: Arc<Semaphore>,
}

impl Gate {
    fn new(cores: usize, queue: usize) -> Self {
        Gate {
            places: Arc::new(Semaphore::new(cores + queue)),
            cores: Arc::new(Semaphore::new(cores)),
        }
    }

    fn admit(&self) -> Result<Ticket, AuthError> {
        let place = self
            .places
            .clone()
            .try_acquire_owned()
            .map_err(|_| AuthError::Busy)?;
        Ok(Ticket { _place: place })
    }
}

fn gate() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Gate::new(cores, QUEUE_LIMIT)
    })
}

/// A place in the line, or [`AuthError::Busy`] when the line is full. Every sign-in takes
/// one before anything else, whatever the name, so a full line says nothing about accounts.
pub fn admit() -> Result<Ticket, AuthError> {
    gate().admit()
}

/// Runs `work` on a blocking thread once a core is free.
async fn on_a_core<T: Send + 'static>(
    _ticket: Ticket,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    let core = gate()
        .cores
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| AuthError::Unavailable)?;
    tokio::task::spawn_blocking(move || {
        let _core = core;
        work()
    })
    .await
    .map_err(|_| AuthError::Unavailable)
}

/// Hashes a password into a PHC string with a fresh random salt.
pub async fn hash(password: String) -> Result<String, AuthError> {
    on_a_core(admit()?, move || hash_blocking(&password)).await?
}

fn hash_blocking(password: &str) -> Result<String, AuthError> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|hash: PasswordHash| hash.to_string())
        .map_err(|error| {
            tracing::error!(error = %error, "password hashing failed");
            AuthError::Unavailable
        })
}

/// A hash of a password nobody knows, checked when the account does not exist so that an
/// unknown name costs the same time as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let secret = uuid::Uuid::new_v4().to_string();
        hash_blocking(&secret).expect("hashing a random string succeeds")
    })
}

/// Whether `password` matches `stored`; with no stored hash, does the same work and says no.
pub async fn verify(ticket: Ticket, password: String, stored: Option<String>) -> bool {
    on_a_core(ticket, move || {
        let (hash, real) = match &stored {
            Some(hash) => (hash.as_str(), true),
            None => (dummy_hash(), false),
        };
        // The stored PHC string carries its own parameters; they are the ones used here.
        let matches = hasher().verify_password(password.as_bytes(), hash).is_ok();
        real && matches
    })
    .await
    .unwrap_or(false)
}

/// Computes the dummy hash now, so the first sign-in of an unknown name is not faster.
pub async fn warm_up() {
    let _ = tokio::task::spawn_blocking(dummy_hash).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hash = hash("correct horse battery".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            verify(
                admit().unwrap(),
                "correct horse battery".into(),
                Some(hash.clone())
            )
            .await
        );
        assert!(!verify(admit().unwrap(), "wrong horse battery".into(), Some(hash)).await);
    }

    #[tokio::test]
    async fn no_stored_hash_never_verifies() {
        assert!(!verify(admit().unwrap(), String::new(), None).await);
        assert!(!verify(admit().unwrap(), "anything at all".into(), None).await);
    }

    #[test]
    fn past_the_queue_limit_the_line_is_full() {
        let gate = Gate::new(2, 3);
        let held: Vec<Ticket> = std::iter::from_fn(|| gate.admit().ok()).take(100).collect();
        assert_eq!(held.len(), 5);
        assert_eq!(gate.admit().err(), Some(AuthError::Busy));
        drop(held);
        assert!(gate.admit().is_ok());
    }
}
