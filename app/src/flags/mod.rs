//! Feature flags: the procedure's emergency feature disable. A stack's flags are its env
//! file's `FEATURE_*` variables and those its compose file names in `x-slipway.flags`;
//! setting one is a run (operators and up) that writes the env file and replaces, without
//! downtime, only the app services whose definition reads the flag.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::auth::AuthError;
use crate::components::Table;
use crate::errors::UserFacing;

#[cfg(feature = "ssr")]
pub mod service;

/// One flag of a stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub name: String,
    /// Its value in the env file (`••••` when too long to be a flag's word).
    pub value: String,
    /// Whether the env file sets it (otherwise the compose file's default applies).
    pub in_env_file: bool,
    /// The value the switch offers (`false` for `true`); empty when there is no obvious one.
    pub switch_to: String,
    /// Services whose definition reads it.
    pub readers: Vec<String>,
    /// The app services a change replaces (data services and the edge read it at their next
    /// start).
    pub replaced: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum FlagError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The flags cannot be read or the change cannot be made; the message says why.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Stack(#[from] crate::stacks::StackError),
    #[error(transparent)]
    Run(#[from] crate::runs::RunError),
    #[error("The console could not be reached: {0}")]
    Transport(String),
}

impl UserFacing for FlagError {
    fn status(&self) -> u16 {
        match self {
            FlagError::Auth(error) => error.status(),
            FlagError::Refused(_) => 422,
            FlagError::Stack(error) => error.status(),
            FlagError::Run(error) => error.status(),
            FlagError::Transport(_) => 503,
        }
    }
}

crate::server_fn_error!(FlagError);

/// The stack's flags; everyone signed in reads them.
#[server(prefix = "/api", endpoint = "flags")]
pub async fn flags(stack: String) -> Result<Vec<Flag>, FlagError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized_for(
        crate::auth::Role::Viewer,
        crate::auth::service::Activity::Background,
    )
    .await
    .map_err(|error| reject(FlagError::from(error)))?;
    let summary = crate::stacks::service::find(&caller.console.store, &stack)
        .await
        .map_err(|error| reject(FlagError::from(error)))?;
    service::list(&summary).map_err(reject)
}

/// Sets a flag: a run that writes it and replaces the services that read it; operators and
/// up. Returns the run's id.
#[server(prefix = "/api", endpoint = "set_flag")]
pub async fn set_flag(stack: String, name: String, value: String) -> Result<String, FlagError> {
    use crate::errors::reject;
    let operator = crate::auth::guard::authorized(crate::auth::Role::Operator)
        .await
        .map_err(|error| reject(FlagError::from(error)))?;
    let request = crate::runs::RunRequest {
        operation: crate::runs::Operation::Flag,
        target: name,
        options: crate::runs::RunOptions {
            flag_value: value.trim().to_owned(),
            ..crate::runs::RunOptions::default()
        },
    };
    crate::runs::start_in_console(&operator, &stack, request)
        .await
        .map_err(|error| reject(FlagError::from(error)))
}

/// The stack page's Flags section: each flag, its value and readers, and (for operators) a
/// form that sets it and follows the run.
#[component]
pub fn FlagsSection(stack: String, can_set: bool) -> impl IntoView {
    let set = ServerAction::<SetFlag>::new();
    Effect::new(move |_| {
        if let Some(Ok(id)) = set.value().get() {
            let navigate = leptos_router::hooks::use_navigate();
            navigate(&format!("/runs/{id}"), Default::default());
        }
    });
    let name = stack.clone();
    let list = Resource::new(move || name.clone(), flags);
    view! {
        <section class="card" data-testid="flags">
            <h2>"Flags"</h2>
            <Transition fallback=|| view! { <p class="muted">"Reading the env file…"</p> }>
                {move || {
                    let stack = stack.clone();
                    Suspend::new(async move {
                        match list.await {
                            Ok(list) if list.is_empty() => view! {
                                <p class="muted">"No flags: the env file has no FEATURE_* variable and the compose file names none in x-slipway.flags."</p>
                            }.into_any(),
                            Ok(list) => view! { <FlagTable list stack can_set set /> }.into_any(),
                            Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                        }
                    })
                }}
            </Transition>
            {move || set.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
        </section>
    }
}

#[component]
fn FlagTable(
    list: Vec<Flag>,
    stack: String,
    can_set: bool,
    set: ServerAction<SetFlag>,
) -> impl IntoView {
    let headers: &'static [&'static str] = if can_set {
        &["Flag", "Value", "Read by", "Set"]
    } else {
        &["Flag", "Value", "Read by"]
    };
    view! {
        <Table testid="flags-table" headers>
            {list
                .into_iter()
                .map(|flag| {
                    let readers = if flag.readers.is_empty() {
                        "no service".to_owned()
                    } else {
                        flag.readers.join(", ")
                    };
                    let value = if flag.in_env_file {
                        flag.value.clone()
                    } else {
                        "(not in the env file)".to_owned()
                    };
                    let restarts = if flag.replaced.is_empty() {
                        "nothing is replaced".to_owned()
                    } else {
                        format!("replaces {}", flag.replaced.join(", "))
                    };
                    let (stack, name, switch_to) = (stack.clone(), flag.name.clone(), flag.switch_to.clone());
                    let form = can_set.then(move || view! {
                        <td>
                            <ActionForm action=set attr:class="form-row">
                                <input type="hidden" name="stack" value=stack />
                                <input type="hidden" name="name" value=name.clone() />
                                <input name="value" value=switch_to required size="8" aria-label=format!("New value of {name}") data-testid=format!("flag-value-{name}") />
                                <button class="button secondary" type="submit" data-testid=format!("set-{name}")>"Set"</button>
                            </ActionForm>
                            <span class="muted">{restarts}</span>
                        </td>
                    });
                    view! {
                        <tr data-flag=flag.name.clone()>
                            <td><code>{flag.name.clone()}</code></td>
                            <td data-testid=format!("flag-{}", flag.name)>{value}</td>
                            <td>{readers}</td>
                            {form}
                        </tr>
                    }
                })
                .collect_view()}
        </Table>
    }
}
