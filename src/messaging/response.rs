//! What a command answers: [`Response`] (status, payload, stream tunnel),
//! [`CommandError`] (each maps to the status the caller sees) and the
//! request's [`Method`] and payload [`Encoding`].

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::frame::{Flags, Frame, Kind, Status};
use crate::wire::payload::json_param;

/// The RPC method (VSOA's GET/SET, the SET flag on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// A read (no SET flag).
    #[default]
    Get,
    /// A write (SET flag).
    Set,
}

/// How a typed payload is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// JSON text in `param`: what every VSOA client sends and reads.
    #[default]
    Json,
    /// postcard in `data`: the compact fast path between Rust peers.
    Postcard,
}

/// An RPC reply: status, payload and an optional stream tunnel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The status (0 ok; 128–255 are free for the service).
    pub status: Status,
    /// The param, JSON text by convention.
    pub param: Bytes,
    /// Raw data.
    pub data: Bytes,
    /// A stream port for the caller to connect to (TUNNEL flag).
    pub tunid: Option<u16>,
}

impl Response {
    /// Status 0, empty payload.
    pub fn ok() -> Self {
        Response::default()
    }

    /// An empty reply with `status` (a user code 128–255, or a VSOA one).
    pub fn with_status(status: impl Into<Status>) -> Self {
        Response {
            status: status.into(),
            ..Response::default()
        }
    }

    /// `value` as JSON in the param, status 0.
    ///
    /// # Errors
    /// [`CommandError::Failed`] if `value` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, CommandError> {
        let json = serde_json::to_vec(value).map_err(|e| CommandError::Failed(e.to_string()))?;
        Ok(Response::ok().param(json))
    }

    /// `value` as postcard in the data, status 0.
    ///
    /// # Errors
    /// [`CommandError::Failed`] if `value` cannot be serialized.
    pub fn postcard<T: Serialize + ?Sized>(value: &T) -> Result<Self, CommandError> {
        let bytes = postcard::to_stdvec(value).map_err(|e| CommandError::Failed(e.to_string()))?;
        Ok(Response::ok().data(bytes))
    }

    /// `value` in the given encoding.
    ///
    /// # Errors
    /// [`CommandError::Failed`] if `value` cannot be serialized.
    pub fn encode<T: Serialize + ?Sized>(
        value: &T,
        encoding: Encoding,
    ) -> Result<Self, CommandError> {
        match encoding {
            Encoding::Json => Response::json(value),
            Encoding::Postcard => Response::postcard(value),
        }
    }

    /// Sets the status.
    #[must_use]
    pub fn status(mut self, status: impl Into<Status>) -> Self {
        self.status = status.into();
        self
    }

    /// Sets the param.
    #[must_use]
    pub fn param(mut self, param: impl Into<Bytes>) -> Self {
        self.param = param.into();
        self
    }

    /// Sets the data.
    #[must_use]
    pub fn data(mut self, data: impl Into<Bytes>) -> Self {
        self.data = data.into();
        self
    }

    /// Offers a stream: the caller connects to this port (see
    /// [`crate::stream::Tunnel`]).
    #[must_use]
    pub fn tunnel(mut self, port: u16) -> Self {
        self.tunid = Some(port);
        self
    }

    /// The param parsed as JSON (an empty param reads as `null`).
    ///
    /// # Errors
    /// [`CommandError::Arguments`] with serde's message.
    pub fn parse_json<T: DeserializeOwned>(&self) -> Result<T, CommandError> {
        json_param(&self.param).map_err(|e| CommandError::Arguments(e.to_string()))
    }

    pub(crate) fn into_frame(self, seqno: u32) -> Frame {
        let mut frame = Frame::new(Kind::Rpc)
            .flags(Flags::REPLY)
            .seqno(seqno)
            .status(self.status)
            .param(self.param)
            .data(self.data);
        if let Some(port) = self.tunid {
            frame = frame.tunid(port);
        }
        frame
    }
}

/// Why a command failed. Each maps to the reply status the caller sees,
/// with the message as `{"error": …}` in the param.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The arguments are missing or malformed: status 2.
    #[error("bad arguments: {0}")]
    Arguments(String),
    /// No route serves the URL: status 3.
    #[error("no command for {0}")]
    NotFound(String),
    /// The caller may not do this: status 5.
    #[error("not permitted: {0}")]
    Forbidden(String),
    /// Any status with a message (user codes 128–255 included).
    #[error("status {status}: {message}")]
    Status {
        /// The reply status.
        status: Status,
        /// What went wrong.
        message: String,
    },
    /// The handler failed (returned this error or panicked): status 4
    /// (no responding).
    #[error("command failed: {0}")]
    Failed(String),
    /// The Commander is gone: status 4.
    #[error("commander unavailable")]
    Unavailable,
}

impl CommandError {
    /// An error with a user status.
    pub fn status(status: impl Into<Status>, message: impl Into<String>) -> Self {
        CommandError::Status {
            status: status.into(),
            message: message.into(),
        }
    }

    /// The reply status for this error.
    pub fn code(&self) -> Status {
        match self {
            CommandError::Arguments(_) => Status::ARGUMENTS,
            CommandError::NotFound(_) => Status::INVALID_URL,
            CommandError::Forbidden(_) => Status::NO_PERMISSIONS,
            CommandError::Status { status, .. } => *status,
            CommandError::Failed(_) | CommandError::Unavailable => Status::NO_RESPONDING,
        }
    }

    /// The error reply: its status, and the message as `{"error": …}`.
    pub fn to_response(&self) -> Response {
        let message = match self {
            CommandError::Status { message, .. } => message.clone(),
            other => other.to_string(),
        };
        Response::with_status(self.code())
            .param(serde_json::json!({ "error": message }).to_string())
    }
}

impl From<std::io::Error> for CommandError {
    /// IO failures (a tunnel that cannot bind, a file) fail the command.
    fn from(e: std::io::Error) -> Self {
        CommandError::Failed(e.to_string())
    }
}

/// What a handler returns.
pub type CommandResult = Result<Response, CommandError>;
