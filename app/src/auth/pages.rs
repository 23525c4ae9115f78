//! The sign-in page and the header's user menu. Both are plain forms underneath: they work
//! before the WASM loads and without it.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::{safe_next, CurrentUser, SignIn, SignOut, MIN_PASSWORD_CHARS};

#[component]
pub fn SignInPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    let query = use_query_map();
    let next = move || safe_next(query.with(|q| q.get("next")));
    // With WASM: a full page load, so the whole page is rendered for the new user.
    // Without it, the server's redirect after the form post does the same.
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            let _ = window().location().set_href(&next());
        }
    });
    let error = move || action.value().get().and_then(Result::err);
    let setup_token = move || {
        query
            .with(|q| q.get("setup"))
            .filter(|token| !token.is_empty())
    };
    view! {
        <Title text="Sign in" />
        {move || setup_token().map(|token| view! { <FirstAdminForm token /> })}
        <section class="card signin">
            <h1>"Sign in"</h1>
            <p class="muted">"Use the name and password an admin gave you."</p>
            <ActionForm action=action>
                <label class="field">
                    "Name" <input name="name" autocomplete="username" required autofocus />
                </label>
                <label class="field">
                    "Password"
                    <input name="password" type="password" autocomplete="current-password" required />
                </label>
                <button class="button wide" type="submit" data-testid="sign-in">
                    "Sign in"
                </button>
            </ActionForm>
            {move || {
                error().map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })
            }}
            <p class="muted small">
                "Passwords have at least " {MIN_PASSWORD_CHARS}
                " characters. Five wrong attempts lock the account for a while."
            </p>
        </section>
    }
}

/// The first admin, created with the console's one-time setup link.
#[component]
fn FirstAdminForm(token: String) -> impl IntoView {
    let create = ServerAction::<super::CreateFirstAdmin>::new();
    view! {
        <section class="card signin" data-testid="first-admin">
            <h1>"Create the first admin"</h1>
            <p class="muted">"No admin exists yet. This link, printed by the console when it started, works once and for an hour."</p>
            <ActionForm action=create>
                <input type="hidden" name="token" value=token />
                <label class="field">"Name" <input name="name" autocomplete="username" required data-testid="first-admin-name" /></label>
                <label class="field">
                    "Password"
                    <input name="password" type="password" autocomplete="new-password" required minlength=MIN_PASSWORD_CHARS data-testid="first-admin-password" />
                </label>
                <button class="button wide" type="submit" data-testid="create-first-admin">"Create the admin"</button>
            </ActionForm>
            {move || match create.value().get() {
                Some(Ok(user)) => Some(view! {
                    <p class="notice" role="status" data-testid="first-admin-created">{format!("{} is the admin now: sign in below.", user.name)}</p>
                }.into_any()),
                Some(Err(error)) => Some(view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any()),
                None => None,
            }}
        </section>
    }
}

/// Name, role and the sign-out button, for the header.
#[component]
pub fn UserMenu(user: CurrentUser) -> impl IntoView {
    let action = ServerAction::<SignOut>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = action.value().get() {
            let _ = window().location().set_href(super::SIGN_IN_PATH);
        }
    });
    view! {
        <div class="user-menu" data-testid="user-menu">
            <span class="user-name">{user.name}</span>
            <span class="role-badge" data-testid="role">{user.role.as_str()}</span>
            <ActionForm action=action>
                <button class="button ghost" type="submit" data-testid="sign-out">
                    "Sign out"
                </button>
            </ActionForm>
        </div>
    }
}
