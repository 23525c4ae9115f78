use serde::{Deserialize, Serialize};

use super::Role;
use crate::errors::UserFacing;

/// What a sign-in refused as [`AuthError::Busy`] is told to wait, in seconds.
const BUSY_RETRY_AFTER_SECS: u32 = 2;

/// Why a request was refused, in words the browser may show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AuthError {
    #[error("Sign in to continue.")]
    NotSignedIn,
    #[error("This needs the {needed} role.")]
    Forbidden { needed: Role },
    /// The same words for an unknown name, a wrong password, a disabled or a locked account.
    #[error(
        "Sign-in failed: the name or password is wrong, or the account is locked for a while."
    )]
    SignInFailed,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("There is no such user.")]
    UnknownUser,
    #[error("This setup link does not work: it was used, it is more than an hour old, or the console started again since (it prints a new one while no admin exists).")]
    SetupLinkInvalid,
    #[error("The console's database did not answer. Try again in a moment.")]
    Unavailable,
    /// Too many sign-ins waiting for their password check at once.
    #[error("The console is busy checking other sign-ins. Try again in a few seconds.")]
    Busy,
    #[error("The console could not be reached: {0}")]
    Transport(String),
}

impl UserFacing for AuthError {
    fn status(&self) -> u16 {
        match self {
            AuthError::NotSignedIn | AuthError::SignInFailed => 401,
            AuthError::Forbidden { .. } | AuthError::SetupLinkInvalid => 403,
            AuthError::UnknownUser => 404,
            AuthError::Conflict(_) => 409,
            AuthError::Invalid(_) => 422,
            AuthError::Unavailable | AuthError::Busy | AuthError::Transport(_) => 503,
        }
    }

    fn retry_after(&self) -> Option<u32> {
        (*self == AuthError::Busy).then_some(BUSY_RETRY_AFTER_SECS)
    }
}

crate::server_fn_error!(AuthError);

crate::store_unavailable!(AuthError, "auth");

#[cfg(feature = "ssr")]
impl From<sqlx::Error> for AuthError {
    fn from(error: sqlx::Error) -> Self {
        crate::store::StoreError::from(error).into()
    }
}
