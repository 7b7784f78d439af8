//! Who is measured in each workload: names, short labels and notes for the report.

/// Who is measured: a server (driven by the harness's own client) or a client variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    /// The raw tokio baseline of the workload.
    Raw,
    /// The raw baseline with SHA-256 at both ends (M5).
    RawSha,
    /// The raw baseline with SHA-256 at the receiver (M5).
    RawShaRecv,
    /// psvc's server driven by the raw client.
    Psvc,
    /// psvc's stream with SHA-256 at both ends (M5).
    PsvcSha,
    /// psvc's stream with SHA-256 at the receiver only (M5).
    PsvcShaRecv,
    /// psvc's own client against psvc's server (M1).
    PsvcClient,
    /// psvc's Broker with 64 publishes in flight (M4).
    PsvcPipelined,
    Node,
    Python,
    Nats,
    Mosquitto,
    /// SHA-256 alone on the client CPU (M5).
    Sha,
    /// Typed call, JSON in param (M6).
    Json,
    /// Typed call, postcard in data (M6).
    Postcard,
}

impl Who {
    pub(crate) fn short(self) -> &'static str {
        match self {
            Who::Raw => "raw",
            Who::RawSha => "raw+sha",
            Who::RawShaRecv => "raw+sha-recv",
            Who::Psvc => "psvc",
            Who::PsvcSha => "psvc+sha",
            Who::PsvcShaRecv => "psvc+sha-recv",
            Who::PsvcClient => "psvc-client",
            Who::PsvcPipelined => "psvc-pipe64",
            Who::Node => "vsoa-node",
            Who::Python => "vsoa-python",
            Who::Nats => "nats",
            Who::Mosquitto => "mosquitto",
            Who::Sha => "sha256",
            Who::Json => "json",
            Who::Postcard => "postcard",
        }
    }

    pub(crate) fn name(self, m: usize) -> String {
        match (self, m) {
            (Who::Raw, 1..=3) => "raw tokio LengthDelimitedCodec echo".into(),
            (Who::Raw, 4) => "raw tokio fan-out".into(),
            (Who::Raw, 5) => "raw tokio copy".into(),
            (Who::RawSha, _) => "raw tokio copy + SHA-256 at both ends".into(),
            (Who::RawShaRecv, _) => "raw tokio copy + SHA-256 at the receiver".into(),
            (Who::Psvc, _) => "**psvc**".into(),
            (Who::PsvcSha, _) => "**psvc stream + SHA-256 at both ends**".into(),
            (Who::PsvcShaRecv, _) => "**psvc stream + SHA-256 at the receiver**".into(),
            (Who::PsvcClient, _) => "psvc Client → psvc".into(),
            (Who::PsvcPipelined, _) => "**psvc, 64 publishes in flight**".into(),
            (Who::Node, _) => "vsoa-node (C core)".into(),
            (Who::Python, _) => "vsoa-python".into(),
            (Who::Nats, _) => "nats-server".into(),
            (Who::Mosquitto, _) => "mosquitto".into(),
            (Who::Sha, _) => "SHA-256 alone (client CPU)".into(),
            (Who::Json, _) => "**psvc typed call, JSON**".into(),
            (Who::Postcard, _) => "**psvc typed call, postcard**".into(),
            (Who::Raw, _) => "raw".into(),
        }
    }

    pub(crate) fn note(self, m: usize) -> &'static str {
        match (self, m) {
            (Who::Raw, 1..=3) => {
                "Framed<LengthDelimitedCodec> split + forward, current_thread; same bytes per request behind a 4-byte length"
            }
            (Who::Psvc, 1..=3) => {
                "Commander route /echo (Response with the request's param + data), actix System"
            }
            (Who::PsvcClient, _) => {
                "psvc::client::Client::rpc(Rpc::get(\"/echo\").data(..)) in an actix System: includes the client's cost"
            }
            (Who::Node, 1..=3) => "tests/peers/node_echo_server.js, npm vsoa (native binding)",
            (Who::Python, 1..=3) => "tests/peers/py_echo_server.py, PyPI vsoa (threads + select)",
            (Who::Raw, 4) => {
                "publisher loop in the server process, bounded queue (1,024) + batching writer per subscriber"
            }
            (Who::Psvc, 4) => {
                "publisher loop in the server process: broker.send(Publish).await, one at a time; subscribers acknowledge progress (flow control)"
            }
            (Who::PsvcPipelined, _) => {
                "same, up to 64 broker.send futures in flight (FuturesOrdered), each Delivered checked"
            }
            (Who::Nats, 4) => {
                "publisher is a client connection in the subscriber process (same window)"
            }
            (Who::Mosquitto, 4) => {
                "QoS 0; publisher is a client connection in the subscriber process (same window)"
            }
            (Who::Raw, 5) => "write_all of 256 KiB chunks; client reads 256 KiB at a time",
            (Who::RawShaRecv, _) => {
                "same; the client hashes on a second thread while the bytes flow"
            }
            (Who::RawSha, _) => {
                "same; SHA-256 at both ends, each on a second thread while the bytes flow"
            }
            (Who::Psvc, 5) => {
                "Commander route: Tunnel::open → reply tunid → write_all 256 KiB chunks; raw client"
            }
            (Who::PsvcShaRecv, _) => {
                "server writes 256 KiB chunks (no hash); client: psvc Client::rpc + Client::stream + psvc::stream::copy into a sink; digest checked"
            }
            (Who::PsvcSha, _) => {
                "server: psvc::stream::copy (pattern reader → tunnel); client: psvc Client::rpc + Client::stream + psvc::stream::copy into a sink; digest checked"
            }
            (Who::Node, 5) | (Who::Python, 5) => {
                "peer script: RPC /stream/download → tunid; **64 MiB** (the scripts' limit), not the full size"
            }
            (Who::Sha, _) => "sha2 crate, 1 MiB updates, no I/O: the hashing bound",
            (Who::Json, _) => "Client::call, serde_json struct in param",
            (Who::Postcard, _) => "Client::call_postcard, postcard struct in data",
            _ => "",
        }
    }
}
