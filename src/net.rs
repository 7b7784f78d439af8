//! Transports: plain TCP or TLS ([`tls`]), shared by the server, the client
//! and streams, and the client end of streams ([`tunnel`]).

pub(crate) mod io;
pub mod tls;
pub mod tunnel;
