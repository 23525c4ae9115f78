//! The page frame every section shares: document head, header, navigation, routes,
//! the not-found page and the placeholder for sections still to come.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::StaticSegment;

use crate::sections::{section_for, SECTIONS};
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
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Browser tests wait for this mark before they click: clicks before hydration are lost.
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Stylesheet id="leptos" href="/pkg/slipway.css" />
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg" />
        <Meta name="description" content="Slipway: the release console for Docker applications." />
        <Title formatter=|page: String| format!("{page} · Slipway") />
        <Router>
            <Header />
            <main class="page">
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=OverviewPage />
                    <Route path=StaticSegment("stacks") view=|| view! { <Pending path="/stacks" /> } />
                    <Route path=StaticSegment("releases") view=|| view! { <Pending path="/releases" /> } />
                    <Route path=StaticSegment("runs") view=|| view! { <Pending path="/runs" /> } />
                    <Route path=StaticSegment("health") view=|| view! { <Pending path="/health" /> } />
                    <Route path=StaticSegment("backups") view=|| view! { <Pending path="/backups" /> } />
                    <Route path=StaticSegment("history") view=|| view! { <Pending path="/history" /> } />
                    <Route path=StaticSegment("approvals") view=|| view! { <Pending path="/approvals" /> } />
                    <Route path=StaticSegment("audit") view=|| view! { <Pending path="/audit" /> } />
                    <Route path=StaticSegment("admin") view=|| view! { <Pending path="/admin" /> } />
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn Header() -> impl IntoView {
    view! {
        <header class="topbar">
            <a class="brand" href="/">
                <img src="/favicon.svg" alt="" width="28" height="28" />
                <span>"Slipway"</span>
            </a>
            <nav class="nav" aria-label="Sections">
                {SECTIONS
                    .iter()
                    .map(|section| {
                        view! {
                            <A href=section.path exact=true>
                                {section.label}
                            </A>
                        }
                    })
                    .collect_view()}
            </nav>
        </header>
    }
}

/// A section whose feature is not built yet: it says what it is for and nothing more.
#[component]
fn Pending(path: &'static str) -> impl IntoView {
    let Some(section) = section_for(path) else {
        return NotFound().into_any();
    };
    view! {
        <Title text=section.label />
        <h1>{section.label}</h1>
        <p class="lead">{section.purpose}</p>
        <div class="notice" data-testid="not-available">
            <strong>"Not available yet."</strong>
            " This section has no feature behind it in this version of Slipway, so it shows no data."
        </div>
    }
    .into_any()
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
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
