//! Small pieces of UI that several sections share.

use leptos::prelude::*;

/// A signal that counts up every `period` while the component lives (in the browser only).
pub fn ticker(period: std::time::Duration) -> ReadSignal<u64> {
    let (tick, set_tick) = signal(0_u64);
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || set_tick.update(|t| *t += 1), period) {
            on_cleanup(move || handle.clear());
        }
    });
    tick
}

/// `2026-11-28T17:54:58.315499977Z` as `2026-11-28 17:54:58 UTC`.
pub fn readable_time(rfc3339: &str) -> String {
    match rfc3339.get(..19) {
        Some(seconds) => format!("{} UTC", seconds.replacen('T', " ", 1)),
        None => rfc3339.to_owned(),
    }
}

/// A table with one header row; the rows come as children.
#[component]
pub fn Table(
    /// `data-testid` of the table, for the browser tests.
    testid: &'static str,
    headers: &'static [&'static str],
    children: Children,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="table" data-testid=testid>
                <thead>
                    <tr>{headers.iter().map(|header| view! { <th>{*header}</th> }).collect_view()}</tr>
                </thead>
                <tbody>{children()}</tbody>
            </table>
        </div>
    }
}
