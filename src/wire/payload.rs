//! Payload conventions: JSON in param (empty reads as `null`) and error
//! replies carrying `{"error": …}`.

use serde::de::DeserializeOwned;

/// A param parsed as JSON; an empty param reads as `null` (so `()` and
/// `Option`s decode from nothing).
pub(crate) fn json_param<T: DeserializeOwned>(param: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(if param.is_empty() { b"null" } else { param })
}

/// The message of an error reply: `{"error": …}` in the param, else the
/// param as text.
pub(crate) fn error_message(param: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(param)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(param).into_owned())
}
