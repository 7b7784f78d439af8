//! The client verbs of the `psvc` tool: call, sub, pub, datagram, ping and
//! stream, against any VSOA server (psvc or not).
//!
//! Targets are URLs: `vsoa://HOST:PORT/path` (or `vsoa://name/path`,
//! looked up in the position service, or `HOST:PORT/path`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Subcommand};
use psvc::client::{Client, ClientMessage, ClientOptions, ConnectError, RequestError, Rpc};
use psvc::frame::Frame;

/// Exit code: the server answered with a non-zero status.
const EXIT_STATUS: u8 = 1;
/// Exit code: bad arguments (as for clap errors).
const EXIT_USAGE: u8 = 64;
/// Exit code: the server could not be reached (EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;
/// Exit code: no answer in time (EX_TEMPFAIL).
const EXIT_TIMEOUT: u8 = 75;
/// Exit code: a local file could not be read or written (EX_IOERR).
const EXIT_IO: u8 = 74;

/// Options every client verb takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Server password.
    #[arg(long, global = true)]
    pub password: Option<String>,
    /// Seconds to wait for each answer (and for the connection).
    #[arg(long, global = true, default_value_t = 60.0)]
    pub timeout: f64,
    /// Print one JSON object per result, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The payload of a call or datagram.
#[derive(Debug, Args)]
pub struct PayloadArgs {
    /// JSON text for the param.
    #[arg(long)]
    pub param: Option<String>,
    /// Data: literal text, or @FILE to send a file's bytes.
    #[arg(long)]
    pub data: Option<String>,
}

impl PayloadArgs {
    /// The param (checked to be JSON) and the data (read from the file for
    /// `@FILE`).
    fn bytes(&self) -> Result<(Bytes, Bytes), Failure> {
        Ok((
            param_bytes(self.param.as_deref())?,
            data_bytes(self.data.as_deref())?,
        ))
    }
}

/// `psvc call`
#[derive(Debug, Args)]
pub struct CallArgs {
    /// vsoa://HOST:PORT/path
    pub url: String,
    /// Param and data.
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Send a SET instead of a GET.
    #[arg(long)]
    pub set: bool,
    /// Write the reply's data to this file instead of printing it.
    #[arg(long)]
    pub data_out: Option<PathBuf>,
}

/// `psvc sub`
#[derive(Debug, Args)]
pub struct SubArgs {
    /// vsoa://HOST:PORT/url (more URLs may follow as /paths on the same server).
    #[arg(required = true)]
    pub urls: Vec<String>,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
}

/// `psvc pub`
#[derive(Debug, Args)]
pub struct PubArgs {
    /// vsoa://HOST:PORT/url to publish.
    pub url: String,
    /// JSON text for the published param.
    #[arg(long)]
    pub param: Option<String>,
    /// Use the quick UDP channel.
    #[arg(long)]
    pub quick: bool,
    /// The server command that publishes (VSOA clients cannot publish
    /// themselves); it gets `{"url", "param", "quick"}`.
    #[arg(long, default_value = "/publish")]
    pub via: String,
}

/// `psvc datagram`
#[derive(Debug, Args)]
pub struct DatagramArgs {
    /// vsoa://HOST:PORT/url
    pub url: String,
    /// Param and data.
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Send over the quick UDP channel.
    #[arg(long)]
    pub quick: bool,
}

/// `psvc ping`
#[derive(Debug, Args)]
pub struct PingArgs {
    /// vsoa://HOST:PORT
    pub url: String,
    /// Number of pings.
    #[arg(long, default_value_t = 3)]
    pub count: u32,
}

/// `psvc stream`
#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Call URL, then save the stream it opens to a file.
    Get(StreamArgs),
    /// Call URL (as a SET), then send a file into the stream it opens.
    Put(StreamArgs),
}

/// Arguments of `psvc stream get|put`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// vsoa://HOST:PORT/path of the command that opens the stream.
    pub url: String,
    /// The local file (written by get, read by put).
    pub file: PathBuf,
    /// JSON text for the command's param.
    #[arg(long)]
    pub param: Option<String>,
}

/// `psvc sys …`: a service's system commands.
#[derive(Debug, Args)]
#[command(disable_help_subcommand = true)]
pub struct SysArgs {
    /// What to ask.
    #[command(subcommand)]
    pub verb: SysVerb,
    /// The admin token's file, when the service has `sys_commands = admin`
    /// (else $PSVC_ADMIN_TOKEN; never on the command line).
    #[arg(long, global = true, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
}

/// One system command.
#[derive(Debug, Subcommand)]
pub enum SysVerb {
    /// The service sees you: prints your address as the service sees it.
    Ping {
        /// vsoa://HOST:PORT
        server: String,
    },
    /// Every route of the service with its description.
    Help {
        /// vsoa://HOST:PORT
        server: String,
    },
    /// The supervision tree: id, kind, state, restarts, uptime.
    Children {
        /// vsoa://HOST:PORT
        server: String,
    },
    /// Restart a child of the root supervisor by id.
    Restart {
        /// vsoa://HOST:PORT
        server: String,
        /// The child's id (see `psvc sys children`).
        id: String,
    },
    /// Reload the configuration; returns once it is applied or refused.
    Reload {
        /// vsoa://HOST:PORT
        server: String,
    },
    /// Connections, calls, errors, restarts, dropped, uptime, version.
    Stats {
        /// vsoa://HOST:PORT
        server: String,
    },
}

/// A failure with its exit code and message.
struct Failure(u8, String);

impl From<ConnectError> for Failure {
    fn from(e: ConnectError) -> Self {
        Failure(
            EXIT_UNAVAILABLE,
            format!("connect failed (VSOA code {}): {e}", e.code()),
        )
    }
}

impl From<RequestError> for Failure {
    fn from(e: RequestError) -> Self {
        let code = match e {
            RequestError::Timeout(_) => EXIT_TIMEOUT,
            _ => EXIT_UNAVAILABLE,
        };
        Failure(code, e.to_string())
    }
}

/// Splits `vsoa://host:port/path` into the server part and the path.
fn target(url: &str) -> Result<(String, String), Failure> {
    let (scheme, rest) = match url.strip_prefix("vsoa://") {
        Some(rest) => ("vsoa://", rest),
        None => ("", url),
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        return Err(Failure(
            EXIT_USAGE,
            format!("{url}: expected vsoa://HOST:PORT/path"),
        ));
    }
    Ok((format!("{scheme}{host}"), path.to_owned()))
}

fn param_bytes(param: Option<&str>) -> Result<Bytes, Failure> {
    match param {
        None => Ok(Bytes::new()),
        Some(text) => {
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| Failure(EXIT_USAGE, format!("--param is not JSON: {e}")))?;
            Ok(Bytes::copy_from_slice(text.as_bytes()))
        }
    }
}

fn data_bytes(data: Option<&str>) -> Result<Bytes, Failure> {
    match data {
        None => Ok(Bytes::new()),
        Some(spec) => match spec.strip_prefix('@') {
            Some(path) => std::fs::read(path)
                .map(Bytes::from)
                .map_err(|e| Failure(EXIT_IO, format!("{path}: {e}"))),
            None => Ok(Bytes::copy_from_slice(spec.as_bytes())),
        },
    }
}

fn limit(common: &Common) -> Duration {
    Duration::try_from_secs_f64(common.timeout).unwrap_or(Duration::from_secs(60))
}

async fn connect(server: &str, common: &Common) -> Result<Client, Failure> {
    let mut options = ClientOptions::new(server)
        .connect_timeout(limit(common))
        .request_timeout(limit(common));
    if let Some(pw) = &common.password {
        options = options.password(pw);
    }
    Ok(Client::connect(options).await?)
}

/// The param as JSON when it is JSON, else as text.
fn param_value(param: &[u8]) -> serde_json::Value {
    if param.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(param)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(param).into_owned()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A packet as one JSON object.
fn frame_json(frame: &Frame, extra: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let mut v = serde_json::json!({
        "url": String::from_utf8_lossy(&frame.url),
        "status": frame.status.0,
        "param": param_value(&frame.param),
        "data_len": frame.data.len(),
        "data_hex": hex(&frame.data),
    });
    if let Some(map) = v.as_object_mut() {
        for (k, val) in extra {
            map.insert((*k).to_owned(), val.clone());
        }
    }
    v
}

fn print_frame(frame: &Frame, common: &Common, extra: &[(&str, serde_json::Value)]) {
    if common.json {
        println!("{}", frame_json(frame, extra));
        return;
    }
    let url = String::from_utf8_lossy(&frame.url);
    let mut line = String::new();
    if !url.is_empty() {
        line.push_str(&url);
        line.push(' ');
    }
    for (k, v) in extra {
        line.push_str(&format!("{k}={v} "));
    }
    if !frame.param.is_empty() {
        line.push_str(&String::from_utf8_lossy(&frame.param));
    }
    if !frame.data.is_empty() {
        let shown = match std::str::from_utf8(&frame.data) {
            Ok(text) if !text.contains('\0') => text.to_owned(),
            _ => format!("0x{}", hex(&frame.data[..frame.data.len().min(64)])),
        };
        line.push_str(&format!(" [{} data bytes] {shown}", frame.data.len()));
    }
    println!("{}", line.trim_end());
}

async fn call(args: CallArgs, common: &Common) -> Result<(), Failure> {
    let (server, path) = target(&args.url)?;
    let (param, data) = args.payload.bytes()?;
    let client = connect(&server, common).await?;
    let rpc = if args.set {
        Rpc::set(&path)
    } else {
        Rpc::get(&path)
    };
    let mut reply = client
        .rpc(rpc.param(param).data(data).timeout(limit(common)))
        .await?;
    client.close();
    if let Some(out) = &args.data_out {
        std::fs::write(out, &reply.data)
            .map_err(|e| Failure(EXIT_IO, format!("{}: {e}", out.display())))?;
        reply.data = Bytes::new();
    }
    let status = reply.status;
    let mut extra = vec![("status", serde_json::json!(status.0))];
    if reply.flags.contains(psvc::frame::Flags::TUNNEL) {
        extra.push(("tunid", serde_json::json!(reply.tunid)));
    }
    if common.json {
        println!("{}", frame_json(&reply, &extra[1..]));
    } else {
        println!("status {} ({})", status.0, status.name());
        reply.url = Bytes::new();
        print_frame(&reply, common, &extra[1..]);
    }
    if status.is_ok() {
        Ok(())
    } else {
        Err(Failure(EXIT_STATUS, String::new()))
    }
}

/// The admin token: from the file, else $PSVC_ADMIN_TOKEN, else none.
fn admin_token(file: Option<&PathBuf>) -> Result<Option<String>, Failure> {
    if let Some(file) = file {
        let token = std::fs::read_to_string(file)
            .map_err(|e| Failure(EXIT_IO, format!("{}: {e}", file.display())))?;
        return Ok(Some(token.trim().to_owned()));
    }
    Ok(std::env::var("PSVC_ADMIN_TOKEN").ok())
}

async fn sys(args: SysArgs, common: &Common) -> Result<(), Failure> {
    let (server, route, mut param) = match args.verb {
        SysVerb::Ping { server } => (server, "/sys/ping", serde_json::json!({})),
        SysVerb::Help { server } => (server, "/sys/help", serde_json::json!({})),
        SysVerb::Children { server } => (server, "/sys/children", serde_json::json!({})),
        SysVerb::Restart { server, id } => {
            (server, "/sys/restart", serde_json::json!({ "id": id }))
        }
        SysVerb::Reload { server } => (server, "/sys/reload", serde_json::json!({})),
        SysVerb::Stats { server } => (server, "/sys/stats", serde_json::json!({})),
    };
    if let Some(token) = admin_token(args.admin_token_file.as_ref())? {
        param["token"] = token.into();
    }
    let (server, _) = target(&server)?;
    let client = connect(&server, common).await?;
    let started = Instant::now();
    let reply = client
        .rpc(
            Rpc::set(route)
                .param(param.to_string())
                .timeout(limit(common)),
        )
        .await?;
    let elapsed = started.elapsed();
    client.close();
    let value = param_value(&reply.param);
    if !reply.status.is_ok() {
        let message = value
            .get("error")
            .and_then(|e| e.as_str())
            .map_or_else(|| value.to_string(), str::to_owned);
        return Err(Failure(
            EXIT_STATUS,
            format!(
                "{route}: status {} ({}): {message}",
                reply.status.0,
                reply.status.name()
            ),
        ));
    }
    if common.json {
        println!("{value}");
        return Ok(());
    }
    match route {
        "/sys/ping" => println!(
            "pong from {server} in {:.2} ms; it sees you as {}",
            elapsed.as_secs_f64() * 1000.0,
            value["peer"].as_str().unwrap_or("?")
        ),
        "/sys/help" => {
            for entry in value.as_array().into_iter().flatten() {
                println!(
                    "{:<24} {}",
                    entry["route"].as_str().unwrap_or("?"),
                    entry["description"].as_str().unwrap_or("")
                );
            }
        }
        "/sys/children" => {
            println!(
                "{:<24} {:<10} {:<10} {:>8} {:>12}",
                "ID", "KIND", "STATE", "RESTARTS", "UPTIME"
            );
            print_tree(&value, 0);
        }
        _ => println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
        ),
    }
    Ok(())
}

/// `/sys/children` as a table, nested supervisors' children indented
/// under them.
fn print_tree(children: &serde_json::Value, depth: usize) {
    for c in children.as_array().into_iter().flatten() {
        let uptime = c["uptime_ms"].as_u64().map_or_else(
            || "-".to_owned(),
            |ms| format!("{:.1}s", ms as f64 / 1000.0),
        );
        let id = format!("{}{}", "  ".repeat(depth), c["id"].as_str().unwrap_or("?"));
        println!(
            "{:<24} {:<10} {:<10} {:>8} {:>12}",
            id,
            c["kind"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            c["restarts"].as_u64().unwrap_or(0),
            uptime
        );
        print_tree(&c["children"], depth + 1);
    }
}

/// Most messages waiting to be printed by `sub`; past it they are dropped
/// and counted (a terminal slower than the publisher must not grow memory).
const SUB_QUEUE: usize = 1024;

/// Receives client messages for `sub`: hands them to the printer, or counts
/// them when its queue is full.
struct Forward(
    tokio::sync::mpsc::Sender<ClientMessage>,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
);

impl actix::Actor for Forward {
    type Context = actix::Context<Self>;
}

impl actix::Handler<ClientMessage> for Forward {
    type Result = ();
    fn handle(&mut self, msg: ClientMessage, _: &mut Self::Context) {
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = self.0.try_send(msg) {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

async fn sub(args: SubArgs, common: &Common) -> Result<(), Failure> {
    use actix::Actor as _;
    let (server, first) = target(&args.urls[0])?;
    let mut urls = vec![first];
    for more in &args.urls[1..] {
        let (other, path) = target(more)?;
        if other != server && more.contains("://") {
            return Err(Failure(EXIT_USAGE, format!("{more}: not on {server}")));
        }
        urls.push(path);
    }
    let client = connect(&server, common).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(SUB_QUEUE);
    let dropped = std::sync::Arc::<std::sync::atomic::AtomicU64>::default();
    client
        .on_message(Forward(tx, dropped.clone()).start().recipient())
        .await
        .map_err(Failure::from)?;
    client.subscribe(urls.clone()).await?;
    if !common.json {
        eprintln!("subscribed to {} on {server}", urls.join(" "));
    }
    let deadline = args
        .duration
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .map(|d| tokio::time::Instant::now() + d);
    let mut seen = 0u64;
    while args.count.is_none_or(|c| seen < c) {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(m) => m,
                Err(_) => break,
            },
            None => rx.recv().await,
        };
        match next {
            Some(ClientMessage::Published { frame, quick }) => {
                seen += 1;
                print_frame(&frame, common, &[("quick", quick.into())]);
                let _ = std::io::stdout().flush();
            }
            Some(ClientMessage::Disconnected(reason)) => {
                return Err(Failure(EXIT_UNAVAILABLE, format!("disconnected: {reason}")));
            }
            Some(_) => {}
            None => break,
        }
    }
    // Read before closing: a stopped client answers 0.
    let missed =
        dropped.load(std::sync::atomic::Ordering::Relaxed) + client.missed_messages().await;
    client.close();
    if missed > 0 {
        eprintln!("{missed} messages dropped: printing could not keep up");
    }
    Ok(())
}

async fn publish(args: PubArgs, common: &Common) -> Result<(), Failure> {
    let (server, path) = target(&args.url)?;
    let param = match args.param.as_deref() {
        Some(text) => serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| Failure(EXIT_USAGE, format!("--param is not JSON: {e}")))?,
        None => serde_json::Value::Null,
    };
    let client = connect(&server, common).await?;
    let body = serde_json::json!({ "url": path, "param": param, "quick": args.quick });
    let rpc = Rpc::set(&args.via)
        .json(&body)
        .map_err(|e| Failure(EXIT_USAGE, e.to_string()))?;
    let reply = client.rpc(rpc.timeout(limit(common))).await?;
    client.close();
    if common.json {
        println!("{}", frame_json(&reply, &[]));
    } else if reply.status.is_ok() {
        println!("published {path}");
    }
    if reply.status.is_ok() {
        Ok(())
    } else {
        Err(Failure(
            EXIT_STATUS,
            format!(
                "{} answered status {}: {}",
                args.via,
                reply.status.0,
                String::from_utf8_lossy(&reply.param)
            ),
        ))
    }
}

async fn datagram(args: DatagramArgs, common: &Common) -> Result<(), Failure> {
    let (server, path) = target(&args.url)?;
    let (param, data) = args.payload.bytes()?;
    let client = connect(&server, common).await?;
    client.datagram(&path, param, data, args.quick).await?;
    // Make sure a TCP datagram left before closing: a ping follows it.
    client.ping().await?;
    client.close();
    if common.json {
        println!(
            "{}",
            serde_json::json!({ "sent": path, "quick": args.quick })
        );
    } else {
        println!("sent {path}{}", if args.quick { " (quick)" } else { "" });
    }
    Ok(())
}

async fn ping(args: PingArgs, common: &Common) -> Result<(), Failure> {
    let (server, _) = target(&args.url)?;
    let client = connect(&server, common).await?;
    let mut times = Vec::new();
    for i in 0..args.count.max(1) {
        let rtt = client.ping().await?;
        times.push(rtt);
        if common.json {
            println!(
                "{}",
                serde_json::json!({ "seq": i, "rtt_us": rtt.as_micros() })
            );
        } else {
            println!(
                "pong from {server}: seq={i} time={:.3} ms",
                rtt.as_secs_f64() * 1e3
            );
        }
        if i + 1 < args.count {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    client.close();
    Ok(())
}

fn progress(common: &Common, total: Option<u64>) -> indicatif::ProgressBar {
    if common.json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} {bytes}/{total_bytes} {bytes_per_sec} {elapsed_precise} {wide_bar}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

async fn stream(command: StreamCommand, common: &Common) -> Result<(), Failure> {
    let (get, args) = match command {
        StreamCommand::Get(a) => (true, a),
        StreamCommand::Put(a) => (false, a),
    };
    let (server, path) = target(&args.url)?;
    let param = param_bytes(args.param.as_deref())?;
    let size = if get {
        None
    } else {
        Some(
            std::fs::metadata(&args.file)
                .map_err(|e| Failure(EXIT_IO, format!("{}: {e}", args.file.display())))?
                .len(),
        )
    };
    let client = connect(&server, common).await?;
    let rpc = if get {
        Rpc::get(&path)
    } else {
        Rpc::set(&path)
    };
    let reply = client.rpc(rpc.param(param).timeout(limit(common))).await?;
    if !reply.status.is_ok() {
        return Err(Failure(
            EXIT_STATUS,
            format!(
                "{path} answered status {}: {}",
                reply.status.0,
                String::from_utf8_lossy(&reply.param)
            ),
        ));
    }
    if !reply.flags.contains(psvc::frame::Flags::TUNNEL) {
        return Err(Failure(EXIT_STATUS, format!("{path} opened no stream")));
    }
    let mut socket = client
        .open_stream(&reply)
        .await
        .map_err(|e| Failure(EXIT_UNAVAILABLE, format!("stream: {e}")))?;
    let bar = progress(common, size);
    let started = Instant::now();
    let result = if get {
        psvc::stream::recv_file(&mut socket, &args.file, |n| bar.set_position(n)).await
    } else {
        psvc::stream::send_file(&args.file, &mut socket, |n| bar.set_position(n)).await
    };
    bar.finish_and_clear();
    client.close();
    let transfer = result.map_err(|e| Failure(EXIT_IO, format!("{}: {e}", args.file.display())))?;
    let secs = started.elapsed().as_secs_f64();
    if common.json {
        println!(
            "{}",
            serde_json::json!({
                "file": args.file.display().to_string(),
                "bytes": transfer.bytes,
                "sha256": transfer.sha256_hex(),
                "seconds": secs,
            })
        );
    } else {
        println!(
            "{} {} bytes in {secs:.2} s, sha256 {}",
            if get { "received" } else { "sent" },
            transfer.bytes,
            transfer.sha256_hex()
        );
    }
    Ok(())
}

/// A client verb.
#[derive(Debug)]
pub enum Verb {
    /// `psvc call`
    Call(CallArgs),
    /// `psvc sub`
    Sub(SubArgs),
    /// `psvc pub`
    Pub(PubArgs),
    /// `psvc datagram`
    Datagram(DatagramArgs),
    /// `psvc ping`
    Ping(PingArgs),
    /// `psvc stream`
    Stream(StreamCommand),
    /// `psvc sys`
    Sys(SysArgs),
}

/// Runs a client verb on its own actix system; returns the exit code.
pub fn run(verb: Verb, common: &Common) -> ExitCode {
    let system = actix::System::new();
    let result = system.block_on(async move {
        match verb {
            Verb::Call(a) => call(a, common).await,
            Verb::Sub(a) => sub(a, common).await,
            Verb::Pub(a) => publish(a, common).await,
            Verb::Datagram(a) => datagram(a, common).await,
            Verb::Ping(a) => ping(a, common).await,
            Verb::Stream(c) => stream(c, common).await,
            Verb::Sys(a) => sys(a, common).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            if !message.is_empty() {
                if common.json {
                    println!("{}", serde_json::json!({ "error": message, "exit": code }));
                }
                eprintln!("psvc: {message}");
            }
            ExitCode::from(code)
        }
    }
}
