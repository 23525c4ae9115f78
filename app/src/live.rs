//! The browser's side of live streams: server-sent events from the console (see
//! `server/src/live.rs`) applied to a page's signals. The server renders what is stored; only
//! the hydrated page opens a stream, so on the server this does nothing.

/// Opens the event stream at `url` and hands the data of each event named in `kinds` to
/// `on_event`, until `on_event` returns `false` or the reactive owner that subscribed is
/// cleaned up (the page is left, or the effect that subscribed runs again). The browser
/// reconnects by itself after a dropped connection.
pub fn subscribe(
    url: String,
    kinds: &'static [&'static str],
    on_event: impl FnMut(String) -> bool + 'static,
) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::prelude::on_cleanup;
        use leptos::wasm_bindgen::{closure::Closure, JsCast};
        let Ok(source) = web_sys::EventSource::new(&url) else {
            return;
        };
        let mut on_event = on_event;
        let listener = {
            let source = source.clone();
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
                move |message: web_sys::MessageEvent| {
                    let Some(data) = message.data().as_string() else {
                        return;
                    };
                    if !on_event(data) {
                        source.close();
                    }
                },
            )
        };
        for kind in kinds {
            let _ =
                source.add_event_listener_with_callback(kind, listener.as_ref().unchecked_ref());
        }
        let held = send_wrapper::SendWrapper::new((source, listener));
        on_cleanup(move || held.take().0.close());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (url, kinds, on_event);
}
