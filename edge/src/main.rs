//! Slipway's managed edge: a small HTTP proxy that publishes a stack's ports in front of its
//! services, so that an update can start a new container beside the old one and switch to it
//! without dropping a request. One static binary in a `FROM scratch` image (`scripts/build-edge`).
//!
//! - `slipway-edge serve` listens on every port `SLIPWAY_EDGE_LISTENERS` names
//!   (`PORT=SERVICE:TARGET_PORT,…`) and forwards each request to the container that serves
//!   SERVICE now (the service's own name until switched) on TARGET_PORT: a new connection per
//!   request, so no request rides an old connection into a container that is stopping; bodies
//!   streamed both ways; WebSocket and other upgrades passed through; `X-Forwarded-For`,
//!   `X-Forwarded-Proto` and `X-Forwarded-Host` set. On SIGTERM it stops accepting and lets the
//!   requests in flight finish.
//! - `slipway-edge route SERVICE CONTAINER` (Slipway runs it in the edge's container) waits
//!   until CONTAINER answers HTTP on each of SERVICE's ports, switches SERVICE to it, and returns
//!   once the requests in flight to the container it replaced have finished (the drain).
//! - `slipway-edge health` exits 0 when the edge accepts connections on every port: its
//!   Docker healthcheck.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Where `route` reaches the serving edge.
const CONTROL_SOCKET: &str = "/tmp/slipway-edge.sock";
/// How long a new container may take to answer HTTP before a switch to it is refused.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
/// How long a switch waits for the requests in flight to the container it replaced.
const DRAIN_AT_MOST: Duration = Duration::from_secs(30);
/// How long a stopping edge lets its requests in flight finish.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a looked-up container address is used before it is looked up again.
const REMEMBER_ADDRESS: Duration = Duration::from_secs(2);
/// How long a client may take to send a request's head.
const HEADER_WITHIN: Duration = Duration::from_secs(30);
/// Connections served at once on one port.
const MAX_CONNECTIONS: usize = 4096;
/// How long one connection to an upstream may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// One published port: requests to `port` go to `service` on `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Listener {
    port: u16,
    service: String,
    target: u16,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("slipway-edge: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let listeners = listeners(&std::env::var("SLIPWAY_EDGE_LISTENERS").unwrap_or_default())?;
        match (args.get(1).map(String::as_str), args.get(2), args.get(3)) {
            (Some("serve"), _, _) => serve(listeners).await,
            (Some("route"), Some(service), Some(container)) => route(service, container).await,
            (Some("health"), _, _) => health(&listeners).await,
            _ => Err("usage: slipway-edge serve | route SERVICE CONTAINER | health".into()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("slipway-edge: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `PORT=SERVICE:TARGET_PORT,…` as listeners.
fn listeners(text: &str) -> Result<Vec<Listener>, String> {
    let parsed: Option<Vec<Listener>> = text
        .split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let (port, upstream) = item.trim().split_once('=')?;
            let (service, target) = upstream.rsplit_once(':')?;
            Some(Listener {
                port: port.parse().ok()?,
                service: service.to_owned(),
                target: target.parse().ok()?,
            })
        })
        .collect();
    match parsed {
        Some(listeners) if !listeners.is_empty() => Ok(listeners),
        _ => Err(format!(
            "SLIPWAY_EDGE_LISTENERS must be PORT=SERVICE:TARGET_PORT,… (it is {text:?})"
        )),
    }
}

/// What the serving edge knows: where each service goes now, and the requests in flight to
/// each container.
struct Edge {
    listeners: Vec<Listener>,
    routes: Mutex<HashMap<String, String>>,
    in_flight: Mutex<HashMap<String, usize>>,
    /// Container → its address and when it was looked up: a lookup per request would cost
    /// more than the rest of the hop.
    addresses: Mutex<HashMap<String, (std::net::IpAddr, std::time::Instant)>>,
}

impl Edge {
    /// The container that serves `service` now (its switched one, else the service's name),
    /// with the request counted as in flight to it under the same lock, so that a switch
    /// never misses a request that is about to go to the container it replaced.
    fn route(self: &Arc<Self>, service: &str) -> (String, InFlight) {
        let routes = lock(&self.routes);
        let container = routes
            .get(service)
            .cloned()
            .unwrap_or_else(|| service.to_owned());
        let in_flight = InFlight::new(self.clone(), container.clone());
        drop(routes);
        (container, in_flight)
    }

    /// The container's address when it was looked up within [`REMEMBER_ADDRESS`].
    fn remembered(&self, container: &str) -> Option<std::net::IpAddr> {
        lock(&self.addresses)
            .get(container)
            .filter(|(_, at)| at.elapsed() < REMEMBER_ADDRESS)
            .map(|(ip, _)| *ip)
    }

    fn forget(&self, container: &str) {
        lock(&self.addresses).remove(container);
    }

    /// Asks the network's DNS for the container's address, and remembers it.
    async fn look_up(&self, container: &str, port: u16) -> Result<SocketAddr, String> {
        let address = tokio::net::lookup_host((container, port))
            .await
            .map_err(|error| format!("{container}: {error}"))?
            .next()
            .ok_or_else(|| format!("{container} has no address"))?;
        lock(&self.addresses).insert(
            container.to_owned(),
            (address.ip(), std::time::Instant::now()),
        );
        Ok(address)
    }

    fn in_flight_to(&self, container: &str) -> usize {
        lock(&self.in_flight).get(container).copied().unwrap_or(0)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One request in flight to a container, counted until its response body is done.
struct InFlight {
    edge: Arc<Edge>,
    container: String,
}

impl InFlight {
    fn new(edge: Arc<Edge>, container: String) -> Self {
        *lock(&edge.in_flight).entry(container.clone()).or_insert(0) += 1;
        Self { edge, container }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = lock(&self.edge.in_flight);
        if let Some(count) = counts.get_mut(&self.container) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.container);
            }
        }
    }
}

/// A response body that keeps its request counted as in flight until it is sent or dropped.
struct Tracked {
    body: Incoming,
    _in_flight: InFlight,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

async fn serve(listeners: Vec<Listener>) -> Result<(), String> {
    let edge = Arc::new(Edge {
        listeners: listeners.clone(),
        routes: Mutex::new(HashMap::new()),
        in_flight: Mutex::new(HashMap::new()),
        addresses: Mutex::new(HashMap::new()),
    });
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let connections = Arc::new(AtomicUsize::new(0));
    for listener in listeners {
        let socket = TcpListener::bind(("0.0.0.0", listener.port))
            .await
            .map_err(|error| format!("cannot listen on port {}: {error}", listener.port))?;
        eprintln!(
            "slipway-edge: :{} goes to {}:{}",
            listener.port, listener.service, listener.target
        );
        tokio::spawn(accept(
            edge.clone(),
            listener,
            socket,
            stopping.clone(),
            connections.clone(),
        ));
    }
    let _ = std::fs::remove_file(CONTROL_SOCKET);
    let control = UnixListener::bind(CONTROL_SOCKET)
        .map_err(|error| format!("cannot open {CONTROL_SOCKET}: {error}"))?;
    tokio::spawn(answer_control(edge, control));
    stop_signal().await;
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while connections.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("slipway-edge: stopped");
    Ok(())
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Serves one listener's connections until the edge stops; each connection then finishes
/// the request it is on and closes.
async fn accept(
    edge: Arc<Edge>,
    listener: Listener,
    socket: TcpListener,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    connections: Arc<AtomicUsize>,
) {
    let listener = Arc::new(listener);
    let capacity = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, say: wait instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopping.changed() => return,
        };
        // Beyond the cap a connection waits to be served, and so does the next accept.
        let Ok(permit) = capacity.clone().acquire_owned().await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let (edge, listener, mut stopping) = (edge.clone(), listener.clone(), stopping.clone());
        let connections = connections.clone();
        connections.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                forward(edge.clone(), listener.clone(), peer, request)
            });
            // A client that sends no request head in time is let go (slow-loris).
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_WITHIN)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            connections.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
        });
    }
}

/// Forwards one request to the container that serves the listener's service now.
async fn forward(
    edge: Arc<Edge>,
    listener: Arc<Listener>,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (container, in_flight) = edge.route(&listener.service);
    let mut sender = match connect(&edge, &container, listener.target).await {
        Ok(sender) => sender,
        Err(error) => return Ok(bad_gateway(&listener.service, &error)),
    };
    // Only WebSocket is passed through: another upgrade (h2c) would let a client talk past
    // the edge's headers.
    let upgrading = request
        .headers()
        .get(UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    let client_side = upgrading.then(|| hyper::upgrade::on(&mut request));
    forwarded_headers(request.headers_mut(), peer, upgrading);
    let mut response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(error) => return Ok(bad_gateway(&listener.service, &error.to_string())),
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_side) = client_side {
            let upstream_side = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                if let (Ok(client), Ok(upstream)) = (client_side.await, upstream_side.await) {
                    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    } else {
        strip_hop_by_hop(response.headers_mut());
    }
    Ok(response.map(|body| {
        Tracked {
            body,
            _in_flight: in_flight,
        }
        .boxed()
    }))
}

/// A new HTTP/1.1 connection to `container:port`, at the address looked up for the container
/// within the last moment; a refused connection to a remembered address is tried once more
/// with a fresh lookup (the container may have been made anew under its name).
async fn connect(
    edge: &Edge,
    container: &str,
    port: u16,
) -> Result<hyper::client::conn::http1::SendRequest<Incoming>, String> {
    let remembered = edge.remembered(container);
    let stream = match remembered {
        Some(ip) => match tcp(container, SocketAddr::new(ip, port)).await {
            Ok(stream) => stream,
            Err(_) => {
                edge.forget(container);
                tcp(container, edge.look_up(container, port).await?).await?
            }
        },
        None => tcp(container, edge.look_up(container, port).await?).await?,
    };
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("{container}:{port}: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender)
}

async fn tcp(container: &str, address: SocketAddr) -> Result<TcpStream, String> {
    tokio::time::timeout(CONNECT_WITHIN, TcpStream::connect(address))
        .await
        .map_err(|_| format!("{container} ({address}) did not accept within {CONNECT_WITHIN:?}"))?
        .map_err(|error| format!("{container} ({address}): {error}"))
}

fn bad_gateway(service: &str, error: &str) -> Response<ProxyBody> {
    eprintln!("slipway-edge: {service}: {error}");
    let mut response = Response::new(
        Full::new(Bytes::from(format!("{service} is not answering\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers that belong to one hop stay on it (an upgrade keeps `Connection` and `Upgrade`,
/// which ask the next hop for it).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all("connection")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in HOP_BY_HOP.iter().map(|name| name.to_string()).chain(named) {
        headers.remove(name.as_str());
    }
}

/// The client's address appended to `X-Forwarded-For`; the scheme (kept when a proxy before
/// this one set it) and the host it asked for.
fn forwarded_headers(headers: &mut HeaderMap, peer: SocketAddr, upgrading: bool) {
    // A body framed by Transfer-Encoding is re-framed by this hop: a Content-Length beside
    // it would cut the body short.
    if headers.contains_key(hyper::header::TRANSFER_ENCODING) {
        headers.remove(hyper::header::CONTENT_LENGTH);
    }
    if !upgrading {
        strip_hop_by_hop(headers);
    }
    let client = peer.ip().to_string();
    let forwarded_for = match headers
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok())
    {
        Some(earlier) => format!("{earlier}, {client}"),
        None => client,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), value);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("http"),
        );
    }
    match headers.get(HOST).cloned() {
        Some(host) => headers.insert(HeaderName::from_static("x-forwarded-host"), host),
        None => headers.remove("x-forwarded-host"),
    };
}

/// Answers `route SERVICE CONTAINER` lines on the control socket.
async fn answer_control(edge: Arc<Edge>, control: UnixListener) {
    while let Ok((stream, _)) = control.accept().await {
        let edge = edge.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["route", service, container] => switch(&edge, service, container).await,
                _ => Err(format!("unknown request {:?}", line.trim())),
            };
            let line = match answer {
                Ok(said) => format!("ok {said}\n"),
                Err(error) => format!("error {error}\n"),
            };
            let _ = write.write_all(line.as_bytes()).await;
        });
    }
}

/// Sends `service` to `container` once it answers on each of the service's ports, then
/// waits for the requests in flight to the container it replaced.
async fn switch(edge: &Arc<Edge>, service: &str, container: &str) -> Result<String, String> {
    if container.is_empty()
        || !container
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!("{container:?} is not a container name"));
    }
    let targets: Vec<u16> = edge
        .listeners
        .iter()
        .filter(|listener| listener.service == service)
        .map(|listener| listener.target)
        .collect();
    if targets.is_empty() {
        return Err(format!("no port of this edge goes to {service}"));
    }
    for target in &targets {
        answers(container, *target).await?;
    }
    edge.forget(container);
    let previous = lock(&edge.routes).insert(service.to_owned(), container.to_owned());
    let previous = previous.unwrap_or_else(|| service.to_owned());
    if previous == container {
        return Ok(format!("{service} goes to {container}"));
    }
    let started = tokio::time::Instant::now();
    let waiting = edge.in_flight_to(&previous);
    while edge.in_flight_to(&previous) > 0 && started.elapsed() < DRAIN_AT_MOST {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = edge.in_flight_to(&previous);
    let drained = if left == 0 {
        format!(
            "{waiting} request(s) in flight to {previous} finished in {} ms",
            started.elapsed().as_millis()
        )
    } else {
        format!("{left} request(s) to {previous} still in flight after {DRAIN_AT_MOST:?}")
    };
    Ok(format!("{service} now goes to {container}; {drained}"))
}

/// Waits until `container:port` gives any HTTP answer.
async fn answers(container: &str, port: u16) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    loop {
        let asked = async {
            let stream =
                tokio::time::timeout(CONNECT_WITHIN, TcpStream::connect((container, port)))
                    .await
                    .map_err(|_| "timeout".to_owned())?
                    .map_err(|error| error.to_string())?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|error| error.to_string())?;
            tokio::spawn(connection);
            let request = Request::get("/")
                .header(HOST, format!("{container}:{port}"))
                .body(Empty::<Bytes>::new())
                .map_err(|error| error.to_string())?;
            sender
                .send_request(request)
                .await
                .map(drop)
                .map_err(|error| error.to_string())
        };
        let last = match tokio::time::timeout(CONNECT_WITHIN, asked).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error,
            Err(_) => "no answer".to_owned(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "{container} does not answer HTTP on port {port} within {} s ({last})",
                ANSWER_WITHIN.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `route SERVICE CONTAINER`: asks the serving edge and prints its answer.
async fn route(service: &str, container: &str) -> Result<(), String> {
    let mut stream = UnixStream::connect(CONTROL_SOCKET)
        .await
        .map_err(|error| format!("the edge is not serving ({CONTROL_SOCKET}: {error})"))?;
    stream
        .write_all(format!("route {service} {container}\n").as_bytes())
        .await
        .map_err(|error| error.to_string())?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .await
        .map_err(|error| error.to_string())?;
    match answer.trim_end().split_once(' ') {
        Some(("ok", said)) => {
            println!("{said}");
            Ok(())
        }
        Some(("error", error)) => Err(error.to_owned()),
        _ => Err(format!("the edge answered {answer:?}")),
    }
}

/// The healthcheck: every port accepts a connection.
async fn health(listeners: &[Listener]) -> Result<(), String> {
    for listener in listeners {
        TcpStream::connect(("127.0.0.1", listener.port))
            .await
            .map_err(|error| format!("port {}: {error}", listener.port))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_read_from_their_setting_or_refused() {
        assert_eq!(
            listeners("10000=web:3000, 10001=api:8080").unwrap(),
            [
                Listener {
                    port: 10000,
                    service: "web".into(),
                    target: 3000
                },
                Listener {
                    port: 10001,
                    service: "api".into(),
                    target: 8080
                },
            ]
        );
        for wrong in ["", "10000", "10000=web", "x=web:1", "10000=web:99999"] {
            assert!(listeners(wrong).is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn the_client_is_appended_and_hop_by_hop_headers_stay_behind() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert(HOST, HeaderValue::from_static("portal.example"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("content-length", HeaderValue::from_static("5"));
        forwarded_headers(&mut headers, "172.18.0.1:5000".parse().unwrap(), false);
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 172.18.0.1");
        assert_eq!(headers["x-forwarded-host"], "portal.example");
        assert_eq!(
            headers["x-forwarded-proto"], "https",
            "the scheme a proxy before this one saw"
        );
        assert!(!headers.contains_key("connection") && !headers.contains_key("x-secret-hop"));
        assert!(
            !headers.contains_key("transfer-encoding") && !headers.contains_key("content-length"),
            "the body is framed again by this hop"
        );

        let mut spoofed = HeaderMap::new();
        spoofed.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        forwarded_headers(&mut spoofed, "127.0.0.1:1".parse().unwrap(), false);
        assert!(!spoofed.contains_key("x-forwarded-host"));
        assert_eq!(spoofed["x-forwarded-proto"], "http");

        let mut upgrade = HeaderMap::new();
        upgrade.insert("connection", HeaderValue::from_static("Upgrade"));
        upgrade.insert(UPGRADE, HeaderValue::from_static("websocket"));
        forwarded_headers(&mut upgrade, "127.0.0.1:1".parse().unwrap(), true);
        assert!(upgrade.contains_key("connection") && upgrade.contains_key(UPGRADE));
    }
}
