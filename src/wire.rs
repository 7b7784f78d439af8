//! The wire: VSOA v2 packets as values ([`frame`]), their codec with the
//! size limits ([`codec`]), the URL rules shared by routing and
//! subscriptions, and the payload conventions (JSON param, error
//! messages). No IO, no actors.

pub mod codec;
pub mod frame;
pub(crate) mod payload;
pub(crate) mod url;
