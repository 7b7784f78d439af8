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

/// A role whose keys [`rotate_keys`] replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rotated {
    /// The root key.
    Root,
    /// Every approver key (the threshold stays).
    Targets,
    /// The Releaser's snapshot key.
    Snapshot,
    /// The Releaser's timestamp key.
    Timestamp,
}

impl std::str::FromStr for Rotated {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "root" => Ok(Rotated::Root),
            "targets" | "approvers" => Ok(Rotated::Targets),
            "snapshot" => Ok(Rotated::Snapshot),
            "timestamp" => Ok(Rotated::Timestamp),
            other => Err(format!(
                "unknown role {other:?} (root, targets, snapshot, timestamp)"
            )),
        }
    }
}

impl Rotated {
    fn role(self) -> RoleType {
        match self {
            Rotated::Root => RoleType::Root,
            Rotated::Targets => RoleType::Targets,
            Rotated::Snapshot => RoleType::Snapshot,
            Rotated::Timestamp => RoleType::Timestamp,
        }
    }
}

/// What [`rotate_keys`] does.
#[derive(Debug, Clone)]
pub struct RotateSpec {
    /// The key directory of `psvc keys init` (holds the root key).
    pub dir: PathBuf,
    /// The release path.
    pub release_path: PathBuf,
    /// The roles whose keys are replaced.
    pub roles: Vec<Rotated>,
    /// How long the new `root.json` is valid.
    pub root_expiry: Duration,
    /// Expiry of the re-signed roles.
    pub expiry: Expiry,
}

impl RotateSpec {
    /// Rotates `roles`, the new root valid for a year.
    pub fn new(
        dir: impl Into<PathBuf>,
        release_path: impl Into<PathBuf>,
        roles: Vec<Rotated>,
    ) -> RotateSpec {
        RotateSpec {
            dir: dir.into(),
            release_path: release_path.into(),
            roles,
            root_expiry: Duration::from_secs(365 * 24 * 3600),
            expiry: Expiry::default(),
        }
    }
}

/// What [`rotate_keys`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RotateReport {
    /// The new root version.
    pub root_version: u64,
    /// The roles rotated.
    pub roles: Vec<Rotated>,
    /// The new key files (replacing the old ones in place).
    pub new_keys: Vec<PathBuf>,
    /// Where the old key files went (`retired/`; they sign nothing valid
    /// any more).
    pub retired: Vec<PathBuf>,
    /// The new root to ship with new installations (existing ones follow
    /// the chain of `N.root.json`).
    pub root_json: PathBuf,
}

/// Replaces the keys of `spec.roles`: the old key files move to
/// `retired/`, new ones take their names, and root version N+1 is
/// signed by the old root key and, if the root key was rotated, the new
/// one; the metadata the rotated keys signed is re-signed at once
/// (targets by the new approver keys, always a new snapshot and
/// timestamp). Clients follow the rotation through `N.root.json` from
/// any older root they trust; what an old key signs is refused.
///
/// # Errors
/// [`RepoError`]: no repository, no root key, no role named, a write
/// failed. The old keys stay in place when nothing was published.
pub async fn rotate_keys(spec: &RotateSpec) -> Result<RotateReport, RepoError> {
    let mut roles = spec.roles.clone();
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        return Err(RepoError::Key("name a role to rotate".into()));
    }
    let mut repo = ReleaseRepo::open(&spec.release_path).await?;
    let old_root = repo.root().signed.clone();
    let old_root_key = spec.dir.join("root.pk8");
    let root_key_id = key_id_of(&old_root_key)?;
    if !old_root
        .roles
        .get(&RoleType::Root)
        .is_some_and(|r| r.keyids.contains(&root_key_id))
    {
        return Err(RepoError::Key(format!(
            "{} is not the root key of this repository",
            old_root_key.display()
        )));
    }
    let files_of = |role: Rotated| -> Vec<PathBuf> {
        match role {
            Rotated::Root => vec![spec.dir.join("root.pk8")],
            Rotated::Snapshot => vec![spec.dir.join("snapshot.pk8")],
            Rotated::Timestamp => vec![spec.dir.join("timestamp.pk8")],
            Rotated::Targets => (1..=old_root
                .roles
                .get(&RoleType::Targets)
                .map_or(0, |r| r.keyids.len()))
                .map(|i| spec.dir.join(format!("approver-{i}.pk8")))
                .collect(),
        }
    };
    // New keys are made beside the old ones first; the old ones move only
    // once the new root is signed.
    let rng = SystemRandom::new();
    let mut root = old_root.clone();
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    let cleanup = |staged: &[(PathBuf, PathBuf)]| {
        for (new, _) in staged {
            let _ = std::fs::remove_file(new);
        }
    };
    for &role in &roles {
        let mut keyids = Vec::new();
        for path in files_of(role) {
            let fresh = path.with_extension("pk8.new");
            let _ = std::fs::remove_file(&fresh);
            let id = match generate(&rng, &fresh) {
                Ok(id) => id,
                Err(e) => {
                    cleanup(&staged);
                    return Err(e);
                }
            };
            let der = std::fs::read(&fresh).map_err(RepoError::io(&fresh))?;
            let pair = tough::sign::parse_keypair(&der)
                .map_err(|e| RepoError::Key(format!("{}: {e}", fresh.display())))?;
            root.keys.insert(id.clone(), pair.tuf_key());
            keyids.push(id);
            staged.push((fresh, path));
        }
        if let Some(keys) = root.roles.get_mut(&role.role()) {
            keys.keyids = keyids;
        }
    }
    // Keys no role uses any more leave the root.
    let used: std::collections::HashSet<_> = root
        .roles
        .values()
        .flat_map(|r| r.keyids.iter().cloned())
        .collect();
    root.keys.retain(|id, _| used.contains(id));
    root.version = NonZeroU64::new(old_root.version.get() + 1).unwrap_or(NonZeroU64::MIN);
    root.expires = super::repo::expires_in(spec.root_expiry)?;

    let new_path = |p: &Path| {
        staged
            .iter()
            .find(|(_, old)| old == p)
            .map_or_else(|| p.to_path_buf(), |(new, _)| new.clone())
    };
    let mut signers = vec![old_root_key.clone()];
    if roles.contains(&Rotated::Root) {
        signers.push(new_path(&old_root_key));
    }
    let mut signed = tough::schema::Signed {
        signed: root,
        signatures: Vec::new(),
    };
    for key in &signers {
        match super::repo::signature_of(&signed.signed, key).await {
            Ok(sig) => signed.signatures.push(sig),
            Err(e) => {
                cleanup(&staged);
                return Err(e);
            }
        }
    }
    let approvers: Option<Vec<PathBuf>> = roles.contains(&Rotated::Targets).then(|| {
        files_of(Rotated::Targets)
            .iter()
            .map(|p| new_path(p))
            .collect()
    });
    let online = OnlineKeys {
        snapshot: new_path(&spec.dir.join("snapshot.pk8")),
        timestamp: new_path(&spec.dir.join("timestamp.pk8")),
    };
    let version = signed.signed.version.get();
    if let Err(e) = repo
        .publish_root(signed, approvers.as_deref(), &online, &spec.expiry)
        .await
    {
        cleanup(&staged);
        return Err(e);
    }
    // Published: the new keys take the old names; the old ones retire.
    let retired_dir = spec.dir.join("retired");
    std::fs::create_dir_all(&retired_dir).map_err(RepoError::io(&retired_dir))?;
    let mut retired = Vec::new();
    let mut new_keys = Vec::new();
    for (fresh, path) in &staged {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let old = retired_dir.join(format!("{name}.root-{}.pk8", version - 1));
        std::fs::rename(path, &old).map_err(RepoError::io(path))?;
        std::fs::rename(fresh, path).map_err(RepoError::io(fresh))?;
        retired.push(old);
        new_keys.push(path.clone());
    }
    crate::fsutil::sync_dir(&spec.dir).map_err(RepoError::io(&spec.dir))?;
    let shipped = spec.dir.join("root.json");
    let served = repo.layout().metadata_dir().join("root.json");
    let bytes = std::fs::read(&served).map_err(RepoError::io(&served))?;
    crate::fsutil::write_atomic(&shipped, &bytes).map_err(RepoError::io(&shipped))?;
    Ok(RotateReport {
        root_version: version,
        roles,
        new_keys,
        retired,
        root_json: shipped,
    })
}
