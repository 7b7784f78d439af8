//! `psvc keys init`: the TUF roles as ed25519 keys.
//!
//! | role | key files | kept where | signs |
//! |---|---|---|---|
//! | root | `root.pk8` | offline, a safe | `root.json`: which keys hold each role |
//! | targets | `approver-N.pk8` (k of n) | with each approver | which versions exist, their hashes, channels, rollout |
//! | snapshot | `snapshot.pk8` | the Releaser | which targets metadata is current (no mix-and-match) |
//! | timestamp | `timestamp.pk8` | the Releaser | that the snapshot is fresh (no freeze), re-signed before expiry |
//!
//! The Builder holds no key: building is not approving.

use std::io::Write;
use std::num::NonZeroU64;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use serde::Serialize;
use tough::editor::signed::SignedRole;
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::{KeyHolder, RoleKeys, RoleType, Root};
use tough::sign::Sign;

use super::repo::{Expiry, OnlineKeys, ReleaseRepo, RepoError, RepoLayout};

/// What `init_keys` makes.
#[derive(Debug, Clone)]
pub struct KeysSpec {
    /// Directory for the key files (created, mode 0700; must hold no key yet).
    pub dir: PathBuf,
    /// The release path; the repository is created under it.
    pub release_path: PathBuf,
    /// Number of approver keys (n).
    pub approvers: usize,
    /// Approvals needed (k).
    pub threshold: usize,
    /// How long `root.json` is valid.
    pub root_expiry: Duration,
    /// Expiry of the other roles.
    pub expiry: Expiry,
}

impl KeysSpec {
    /// One approver, threshold 1, root valid for a year.
    pub fn new(dir: impl Into<PathBuf>, release_path: impl Into<PathBuf>) -> KeysSpec {
        KeysSpec {
            dir: dir.into(),
            release_path: release_path.into(),
            approvers: 1,
            threshold: 1,
            root_expiry: Duration::from_secs(365 * 24 * 3600),
            expiry: Expiry::default(),
        }
    }
}

/// Where everything went.
#[derive(Debug, Clone, Serialize)]
pub struct KeysReport {
    /// The root key (keep offline).
    pub root_key: PathBuf,
    /// The approver keys (one per approver; not the Builder's).
    pub approver_keys: Vec<PathBuf>,
    /// Approvals needed.
    pub threshold: usize,
    /// The Releaser's online keys.
    pub snapshot_key: PathBuf,
    /// The Releaser's online keys.
    pub timestamp_key: PathBuf,
    /// The trusted root to ship with every client (`root.json`).
    pub root_json: PathBuf,
    /// The repository's metadata directory.
    pub metadata_dir: PathBuf,
}

/// Writes a new key file with mode 0600, failing if it exists.
fn write_key(path: &Path, pkcs8: &[u8]) -> Result<(), RepoError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(RepoError::io(path))?;
    file.write_all(pkcs8).map_err(RepoError::io(path))?;
    file.sync_all().map_err(RepoError::io(path))
}

fn generate(rng: &SystemRandom, path: &Path) -> Result<Decoded<Hex>, RepoError> {
    let doc = Ed25519KeyPair::generate_pkcs8(rng)
        .map_err(|_| RepoError::Key(format!("{}: no secure random bytes", path.display())))?;
    write_key(path, doc.as_ref())?;
    key_id_of(path)
}

/// The TUF key id of the key in `path`.
pub(crate) fn key_id_of(path: &Path) -> Result<Decoded<Hex>, RepoError> {
    let der = std::fs::read(path).map_err(RepoError::io(path))?;
    let pair = tough::sign::parse_keypair(&der)
        .map_err(|e| RepoError::Key(format!("{}: {e}", path.display())))?;
    pair.tuf_key()
        .key_id()
        .map_err(|e| RepoError::Key(format!("{}: {e}", path.display())))
}

/// Creates the keys of every role and a repository with no release yet:
/// `1.root.json` signed by the root key, and empty targets, snapshot and
/// timestamp metadata, so a Releaser can serve it at once.
///
/// # Errors
/// [`RepoError`] if `threshold` is 0 or above `approvers`, a key file
/// already exists, or a file cannot be written.
pub async fn init_keys(spec: &KeysSpec) -> Result<KeysReport, RepoError> {
    if spec.threshold == 0 || spec.threshold > spec.approvers {
        return Err(RepoError::Key(format!(
            "threshold {} of {} approvers: it must be between 1 and the number of approvers",
            spec.threshold, spec.approvers
        )));
    }
    let layout = RepoLayout::new(&spec.release_path);
    if layout.metadata_dir().join("1.root.json").exists() {
        return Err(RepoError::Key(format!(
            "{} already has a repository; rotate keys instead of starting over",
            spec.release_path.display()
        )));
    }
    std::fs::create_dir_all(&spec.dir).map_err(RepoError::io(&spec.dir))?;
    std::fs::set_permissions(&spec.dir, std::fs::Permissions::from_mode(0o700))
        .map_err(RepoError::io(&spec.dir))?;

    let rng = SystemRandom::new();
    let root_key = spec.dir.join("root.pk8");
    let snapshot_key = spec.dir.join("snapshot.pk8");
    let timestamp_key = spec.dir.join("timestamp.pk8");
    let approver_keys: Vec<PathBuf> = (1..=spec.approvers)
        .map(|i| spec.dir.join(format!("approver-{i}.pk8")))
        .collect();
    if let Some(existing) = [&root_key, &snapshot_key, &timestamp_key]
        .into_iter()
        .chain(&approver_keys)
        .find(|p| p.exists())
    {
        return Err(RepoError::Key(format!(
            "{} exists; keys are never overwritten",
            existing.display()
        )));
    }

    let mut keys = std::collections::HashMap::new();
    let mut role = |paths: &[&PathBuf], threshold: usize| -> Result<RoleKeys, RepoError> {
        let mut keyids = Vec::new();
        for path in paths {
            let id = generate(&rng, path)?;
            let der = std::fs::read(path).map_err(RepoError::io(path))?;
            let pair = tough::sign::parse_keypair(&der)
                .map_err(|e| RepoError::Key(format!("{}: {e}", path.display())))?;
            keys.insert(id.clone(), pair.tuf_key());
            keyids.push(id);
        }
        Ok(RoleKeys {
            keyids,
            threshold: NonZeroU64::new(threshold as u64).unwrap_or(NonZeroU64::MIN),
            _extra: Default::default(),
        })
    };
    let root_role = role(&[&root_key], 1)?;
    let targets_role = role(&approver_keys.iter().collect::<Vec<_>>(), spec.threshold)?;
    let snapshot_role = role(&[&snapshot_key], 1)?;
    let timestamp_role = role(&[&timestamp_key], 1)?;
    let roles = [
        (RoleType::Root, root_role),
        (RoleType::Targets, targets_role),
        (RoleType::Snapshot, snapshot_role),
        (RoleType::Timestamp, timestamp_role),
    ]
    .into_iter()
    .collect();
    let root = Root {
        spec_version: "1.0.0".to_owned(),
        consistent_snapshot: true,
        version: NonZeroU64::MIN,
        expires: super::repo::expires_in(spec.root_expiry)?,
        keys,
        roles,
        _extra: Default::default(),
    };
    let holder = KeyHolder::Root(root.clone());
    let signer: Vec<Box<dyn KeySource>> = vec![Box::new(LocalKeySource {
        path: root_key.clone(),
    })];
    let signed = SignedRole::new(root, &holder, &signer, &rng)
        .await
        .map_err(RepoError::tuf("sign root.json"))?;
    let metadata = layout.metadata_dir();
    std::fs::create_dir_all(&metadata).map_err(RepoError::io(&metadata))?;
    std::fs::create_dir_all(layout.targets_dir()).map_err(RepoError::io(&metadata))?;
    let first = metadata.join("1.root.json");
    crate::fsutil::write_new(&first, signed.buffer()).map_err(RepoError::io(&first))?;
    let shipped = spec.dir.join("root.json");
    crate::fsutil::write_atomic(&shipped, signed.buffer()).map_err(RepoError::io(&shipped))?;
    let served = metadata.join("root.json");
    crate::fsutil::write_atomic(&served, signed.buffer()).map_err(RepoError::io(&served))?;

    // An empty, valid repository.
    let repo = ReleaseRepo::open(&spec.release_path).await?;
    repo.publish_empty(&approver_keys, &OnlineKeys::in_dir(&spec.dir), &spec.expiry)
        .await?;

    Ok(KeysReport {
        root_key,
        approver_keys,
        threshold: spec.threshold,
        snapshot_key,
        timestamp_key,
        root_json: shipped,
        metadata_dir: metadata,
    })
}
