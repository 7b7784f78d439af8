//! Releases: build a version, approve it with signed metadata, serve it.
//!
//! The flow is PyService's (build → approve → serve only what is approved),
//! with the trust moved from a rewritable `status.json` into
//! [The Update Framework](https://theupdateframework.io) metadata, made and
//! checked by the [`tough`] crate:
//!
//! - [`build`]: the [`Builder`] actor and
//!   [`build_release`] make `releases/<version>/` —
//!   the files and a draft `status.json`. The Builder holds no key.
//! - [`keys`]: [`init_keys`] creates the TUF roles (root,
//!   targets = approvers, snapshot, timestamp) as ed25519 keys.
//! - [`repo`]: [`ReleaseRepo`] signs approvals,
//!   deprecations and rollouts into the targets metadata (k-of-n approvers)
//!   and publishes a consistent snapshot under `releases/repository/`:
//!   plain static files that nginx can mirror.
//! - [`releaser`]: the [`Releaser`] actor serves the
//!   repository over the psvc protocol and re-signs the timestamp before
//!   it expires.
//!
//! docs/releases.md walks through the whole flow and the threats each key
//! role stops.

pub mod build;
pub mod delta;
pub mod keys;
pub mod releaser;
pub mod repo;
pub mod status;

pub use build::{BuildError, BuildSpec, Builder, CargoBuild, Source, build_release};
pub use keys::{KeysReport, KeysSpec, RotateReport, RotateSpec, Rotated, init_keys, rotate_keys};
pub use releaser::{GetView, Releaser, ReleaserHandle, ReleaserOptions, RepoView, ServeError};
pub use repo::{
    Change, ChannelState, Expiry, OnlineKeys, Outcome, ReleaseInfo, ReleaseRepo, RepoError,
    RepoLayout, RepoLock, in_rollout, rollout_bucket,
};
pub use status::{FileEntry, ReleaseStatus, Status};
