//! The page frame every section shares: document head, header, navigation, routes,
//! the not-found and forbidden pages and the placeholder for sections still to come.

use leptos::prelude::*;
use leptos::server::SharedValue;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{lazy_route, Lazy, LazyRoute, ParamSegment, SsrMode, StaticSegment};

use crate::approvals::{ApprovalPage, ApprovalsPage, WaitingBadge};
use crate::audit::AuditPage;
use crate::auth::{
    signed_in_user, AdminPage, CurrentUser, Role, SignInPage, SignedInUser, UserMenu,
};
use crate::backups::BackupsPage;
use crate::errors::set_response_status;
use crate::health::{HealthPage, ServiceHealthPage};
use crate::history::HistoryPage;
use crate::notifications::{ChannelPage, NotificationsPage};
use crate::releases::{ReleasePage, ReleasesPage};
use crate::runs::{RunPage, RunsPage};
use crate::sections::{section_for, visible_to};
use crate::stacks::{StackPage, StacksPage};
use crate::system::OverviewPage;

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <HydrationScripts options />
                <script inner_html=RELOAD_WHEN_THE_CODE_FAILS_TO_LOAD></script>
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The page's code (the WASM, its JavaScript, the chunk loader, the page's chunks) failing to
/// arrive leaves the server's HTML without its buttons. A browser on the Docker host drops
/// requests in flight whenever a container starts or stops (Chromium's ERR_NETWORK_CHANGED),
/// and any network may drop one. Chunks are fetched again by their loader (xtask); when a load
/// still fails before the page is hydrated — a rejected fetch or import, or the WASM stopping
/// because a chunk never came — the page loads itself again, at most three times in a minute,
/// and never once a form has been sent (the server may have acted on it).
const RELOAD_WHEN_THE_CODE_FAILS_TO_LOAD: &str = r#"(() => {
  const LOAD_FAILED = /Failed to fetch|NetworkError|Load failed|dynamically imported module|Importing a module script failed/;
  let submitted = false;
  addEventListener("submit", () => { submitted = true; }, true);
  const reload = (reason) => {
    if (submitted || document.body?.dataset.hydrated === "true") return false;
    const [count, since] = (sessionStorage.getItem("slipway-reloads") || "0,0").split(",").map(Number);
    const fresh = Date.now() - since > 60000;
    const tries = fresh ? 0 : count;
    if (tries >= 3) return false;
    console.warn("Slipway: the page's code did not load; loading the page again.", reason);
    sessionStorage.setItem("slipway-reloads", `${tries + 1},${fresh ? Date.now() : since}`);
    setTimeout(() => location.reload(), 500 * (tries + 1));
    return true;
  };
  addEventListener("unhandledrejection", (event) => {
    const failed = event.reason instanceof WebAssembly.RuntimeError || LOAD_FAILED.test(String(event.reason));
    if (failed && reload(event.reason)) event.preventDefault();
  });
  addEventListener("error", (event) => {
    if (event.error instanceof WebAssembly.RuntimeError) reload(event.error);
  });
})();"#;

/// The user the server's page guard attached to this request (server side only).
fn user_of_this_request() -> Option<CurrentUser> {
    #[cfg(feature = "ssr")]
    {
        use_context::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<CurrentUser>().cloned())
    }
    #[cfg(not(feature = "ssr"))]
    {
        None
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Rendered on the server, serialized into the page, read back when the WASM hydrates.
    let user = SharedValue::new(user_of_this_request).into_inner();
    provide_context(SignedInUser(user));

    view! {
        <Stylesheet id="leptos" href="/pkg/slipway.css" />
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg" />
        <Meta name="description" content="Slipway: the release console for Docker applications." />
        <Title formatter=|page: String| format!("{page} · Slipway") />
        <Router>
            <Header />
            <main class="page">
                <Routes fallback=|| {
                    mark_hydrated();
                    view! { <NotFound /> }
                }>
                    <Route path=StaticSegment("sign-in") view={Lazy::<SignInRoute>::new()} />
                    <Route path=StaticSegment("") view={Lazy::<OverviewRoute>::new()} ssr=SsrMode::Async />
                    <Route path=StaticSegment("stacks") view={Lazy::<StacksRoute>::new()} ssr=SsrMode::Async />
                    <Route path=(StaticSegment("stacks"), ParamSegment("name")) view={Lazy::<StackRoute>::new()} ssr=SsrMode::Async />
                    <Route path=StaticSegment("releases") view={Lazy::<ReleasesRoute>::new()} ssr=SsrMode::Async />
                    <Route path=(StaticSegment("releases"), ParamSegment("id")) view={Lazy::<ReleaseRoute>::new()} ssr=SsrMode::Async />
                    <Route path=StaticSegment("runs") view={Lazy::<RunsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=(StaticSegment("runs"), ParamSegment("id")) view={Lazy::<RunRoute>::new()} ssr=SsrMode::Async />
                    <Route path=StaticSegment("health") view={Lazy::<HealthRoute>::new()} ssr=SsrMode::Async />
                    <Route path=(StaticSegment("health"), ParamSegment("stack"), ParamSegment("service")) view={Lazy::<ServiceHealthRoute>::new()} ssr=SsrMode::Async />
                    <Route path=StaticSegment("backups") view={Lazy::<BackupsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=StaticSegment("history") view={Lazy::<HistoryRoute>::new()} ssr=SsrMode::Async />
                    <Route path=StaticSegment("approvals") view={Lazy::<ApprovalsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=(StaticSegment("approvals"), ParamSegment("id")) view={Lazy::<ApprovalRoute>::new()} ssr=SsrMode::Async />
                    <Route path=StaticSegment("audit") view={Lazy::<AuditRoute>::new()} ssr=SsrMode::Async />
                    <Route path=StaticSegment("notifications") view={Lazy::<NotificationsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=(StaticSegment("notifications"), ParamSegment("id")) view={Lazy::<ChannelRoute>::new()} ssr=SsrMode::Async />
                    <Route path=StaticSegment("admin") view={Lazy::<AdminRoute>::new()} ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
    }
}

/// Marks the page as taken over once the route's view has been hydrated (its Effect runs
/// after that): browser tests wait for the mark before they click, as clicks before it are
/// lost. The page's own code arrives after the shell's, so the shell cannot set the mark.
fn mark_hydrated() {
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}

/// A route whose page the browser loads the first time it is shown: its code is a WASM chunk
/// of its own (`#[lazy_route]`), so the first page does not carry every other page.
macro_rules! lazy_page {
    ($route:ident, $page:expr) => {
        struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(_this: Self) -> AnyView {
                mark_hydrated();
                $page.into_any()
            }
        }
    };
}

lazy_page!(SignInRoute, view! { <SignInPage /> });
lazy_page!(OverviewRoute, view! { <OverviewPage /> });
lazy_page!(
    StacksRoute,
    view! { <Guarded path="/stacks">{|| view! { <StacksPage /> }}</Guarded> }
);
lazy_page!(
    StackRoute,
    view! { <Guarded path="/stacks">{|| view! { <StackPage /> }}</Guarded> }
);
lazy_page!(
    ReleasesRoute,
    view! { <Guarded path="/releases">{|| view! { <ReleasesPage /> }}</Guarded> }
);
lazy_page!(
    ReleaseRoute,
    view! { <Guarded path="/releases">{|| view! { <ReleasePage /> }}</Guarded> }
);
lazy_page!(
    RunsRoute,
    view! { <Guarded path="/runs">{|| view! { <RunsPage /> }}</Guarded> }
);
lazy_page!(
    RunRoute,
    view! { <Guarded path="/runs">{|| view! { <RunPage /> }}</Guarded> }
);
lazy_page!(
    HealthRoute,
    view! { <Guarded path="/health">{|| view! { <HealthPage /> }}</Guarded> }
);
lazy_page!(
    ServiceHealthRoute,
    view! { <Guarded path="/health">{|| view! { <ServiceHealthPage /> }}</Guarded> }
);
lazy_page!(
    BackupsRoute,
    view! { <Guarded path="/backups">{|| view! { <BackupsPage /> }}</Guarded> }
);
lazy_page!(
    HistoryRoute,
    view! { <Guarded path="/history">{|| view! { <HistoryPage /> }}</Guarded> }
);
lazy_page!(
    ApprovalsRoute,
    view! { <Guarded path="/approvals">{|| view! { <ApprovalsPage /> }}</Guarded> }
);
lazy_page!(
    ApprovalRoute,
    view! { <Guarded path="/approvals">{|| view! { <ApprovalPage /> }}</Guarded> }
);
lazy_page!(
    AuditRoute,
    view! { <Guarded path="/audit">{|| view! { <AuditPage /> }}</Guarded> }
);
lazy_page!(
    NotificationsRoute,
    view! { <Guarded path="/notifications">{|| view! { <NotificationsPage /> }}</Guarded> }
);
lazy_page!(
    ChannelRoute,
    view! { <Guarded path="/notifications">{|| view! { <ChannelPage /> }}</Guarded> }
);
lazy_page!(
    AdminRoute,
    view! { <Guarded path="/admin">{|| view! { <AdminPage /> }}</Guarded> }
);

#[component]
fn Header() -> impl IntoView {
    let user = signed_in_user();
    let nav = user.clone().map(|user| {
        view! {
            <nav class="nav" aria-label="Sections">
                {visible_to(user.role)
                    .map(|section| {
                        view! {
                            <A href=section.path exact=true>
                                {section.label}
                                {(section.path == "/approvals" && user.role.allows(Role::Approver)).then(|| view! { <WaitingBadge /> })}
                            </A>
                        }
                    })
                    .collect_view()}
            </nav>
        }
    });
    view! {
        <header class="topbar">
            <a class="brand" href="/">
                <img src="/favicon.svg" alt="" width="28" height="28" />
                <span>"Slipway"</span>
            </a>
            {nav}
            {user.map(|user| view! { <UserMenu user /> })}
        </header>
    }
}

/// Shows `children` only to users whose role the section at `path` allows; others get a
/// 403 page. The data behind the page is guarded again by its server functions.
#[component]
fn Guarded(path: &'static str, children: ChildrenFn) -> impl IntoView {
    let Some(section) = section_for(path) else {
        return NotFound().into_any();
    };
    match signed_in_user() {
        Some(user) if user.role.allows(section.min_role) => children().into_any(),
        _ => {
            view! { <Forbidden label=section.label needed=section.min_role.as_str() /> }.into_any()
        }
    }
}

#[component]
fn Forbidden(label: &'static str, needed: &'static str) -> impl IntoView {
    set_response_status(403);
    view! {
        <Title text="Not allowed" />
        <h1>{label}</h1>
        <div class="notice" data-testid="forbidden">
            <strong>"Not allowed."</strong>
            " This section needs the " {needed} " role. Ask an admin if you need it."
        </div>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    set_response_status(404);
    view! {
        <Title text="Page not found" />
        <h1>"Page not found"</h1>
        <p class="lead">"There is no page at this address in the console."</p>
        <p>
            <a class="button" href="/">
                "Back to the overview"
            </a>
        </p>
    }
}
