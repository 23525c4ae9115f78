//! Small pieces of UI that several sections share.

use leptos::prelude::*;

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
