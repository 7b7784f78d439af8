//! Messaging on top of the server and the client: the [`commander`] routes
//! RPCs to handlers (it implements [`crate::server::Dispatch`]), the
//! [`broker`] publishes to subscribers, [`stream`] opens tunnels for bulk
//! bytes, and [`position`] is VSOA's name service.

pub mod broker;
pub mod commander;
pub mod position;
mod response;
mod routes;
pub mod stream;
