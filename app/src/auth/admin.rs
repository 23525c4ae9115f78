//! The Admin page: add users, change roles, disable accounts, reset passwords. Every form
//! is a plain HTML form underneath, so it works without WASM too.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::Table;

use super::{
    AddUser, ChangeRole, ResetPassword, Role, SetUserDisabled, UserSummary, MIN_PASSWORD_CHARS,
};

#[component]
pub fn AdminPage() -> impl IntoView {
    let add = ServerAction::<AddUser>::new();
    let change = ServerAction::<ChangeRole>::new();
    let disable = ServerAction::<SetUserDisabled>::new();
    let reset = ServerAction::<ResetPassword>::new();
    // Any finished action reloads the list.
    let users = Resource::new(
        move || {
            (
                add.version().get(),
                change.version().get(),
                disable.version().get(),
                reset.version().get(),
            )
        },
        |_| super::list_users(),
    );
    let last_error = move || {
        [
            add.value().get().and_then(Result::err),
            change.value().get().and_then(Result::err),
            disable.value().get().and_then(Result::err),
            reset.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .next()
    };
    view! {
        <Title text="Admin" />
        <h1>"Admin"</h1>
        <p class="lead">"Users and their roles. Every change here is written to the audit trail."</p>
        {move || {
            last_error().map(|error| view! { <p class="error" role="alert" data-testid="admin-error">{error.to_string()}</p> })
        }}
        <section class="card">
            <h2>"Add a user"</h2>
            <ActionForm action=add>
                <div class="form-row">
                    <label class="field">"Name" <input name="name" required autocomplete="off" /></label>
                    <label class="field">"Role" <RoleSelect selected=Role::Viewer /></label>
                    <label class="field">"Password" <NewPasswordInput /></label>
                    <button class="button" type="submit" data-testid="add-user">"Add user"</button>
                </div>
            </ActionForm>
        </section>
        <section class="card">
            <h2>"Users"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading users…"</p> }>
                {move || Suspend::new(async move {
                    match users.await {
                        Ok(list) => view! { <UserTable list change disable reset /> }.into_any(),
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
        <crate::releases::CalendarRevokeForm />
    }
}

#[component]
fn UserTable(
    list: Vec<UserSummary>,
    change: ServerAction<ChangeRole>,
    disable: ServerAction<SetUserDisabled>,
    reset: ServerAction<ResetPassword>,
) -> impl IntoView {
    view! {
        <Table testid="users-table" headers=&["Name", "Role", "Status", "New password"]>
                    {list
                        .into_iter()
                        .map(|user| {
                            // Each form's children are a closure of their own.
                            let (for_role, for_status, for_reset) =
                                (user.id.clone(), user.id.clone(), user.id.clone());
                            view! {
                                <tr data-user=user.name.clone()>
                                    <td>{user.name.clone()}</td>
                                    <td>
                                        <ActionForm action=change attr:class="inline">
                                            <input type="hidden" name="user_id" value=for_role.clone() />
                                            <RoleSelect selected=user.role />
                                            <button class="button small" type="submit">"Change"</button>
                                        </ActionForm>
                                    </td>
                                    <td>
                                        <ActionForm action=disable attr:class="inline">
                                            <input type="hidden" name="user_id" value=for_status.clone() />
                                            <input type="hidden" name="disabled" value=(!user.disabled).to_string() />
                                            <span class=if user.disabled { "status off" } else { "status on" }>
                                                {if user.disabled { "disabled" } else { "active" }}
                                            </span>
                                            <button class="button small secondary" type="submit">
                                                {if user.disabled { "Enable" } else { "Disable" }}
                                            </button>
                                        </ActionForm>
                                    </td>
                                    <td>
                                        <ActionForm action=reset attr:class="inline">
                                            <input type="hidden" name="user_id" value=for_reset.clone() />
                                            <NewPasswordInput />
                                            <button class="button small secondary" type="submit">"Reset"</button>
                                        </ActionForm>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </Table>
    }
}

/// A password field for a new password, with the policy's length in the browser too.
#[component]
fn NewPasswordInput() -> impl IntoView {
    view! {
        <input
            name="password"
            type="password"
            required
            minlength=MIN_PASSWORD_CHARS
            autocomplete="new-password"
            aria-label="New password"
        />
    }
}

#[component]
fn RoleSelect(selected: Role) -> impl IntoView {
    view! {
        <select name="role" aria-label="Role">
            {Role::ALL
                .into_iter()
                .map(|role| {
                    view! {
                        <option value=role.as_str() selected=role == selected>
                            {role.as_str()}
                        </option>
                    }
                })
                .collect_view()}
        </select>
    }
}
