//! Helpers shared by the release tests: a repository with keys, drafts
//! built from files, approvals.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod mirror;

use std::path::{Path, PathBuf};

use psvc_actors::release::repo::{Change, Expiry, OnlineKeys, Outcome, ReleaseRepo};
use psvc_actors::release::{BuildSpec, KeysSpec, Source, build_release, init_keys};

/// A temp dir with `releases/` and `keys/` (n approvers, threshold k).
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub release_path: PathBuf,
    pub keys: PathBuf,
}

impl Repo {
    pub async fn new(approvers: usize, threshold: usize) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let release_path = dir.path().join("releases");
        let keys = dir.path().join("keys");
        let mut spec = KeysSpec::new(&keys, &release_path);
        spec.approvers = approvers;
        spec.threshold = threshold;
        init_keys(&spec).await.unwrap();
        Repo {
            dir,
            release_path,
            keys,
        }
    }

    pub fn approver(&self, i: usize) -> PathBuf {
        self.keys.join(format!("approver-{i}.pk8"))
    }

    pub fn online(&self) -> OnlineKeys {
        OnlineKeys::in_dir(&self.keys)
    }

    /// Builds `version` from a directory holding `files`.
    pub fn build(&self, version: &str, files: &[(&str, &[u8])]) {
        let src = self.dir.path().join(format!("src-{version}"));
        write_tree(&src, files);
        build_release(
            &BuildSpec::new(version, &self.release_path, Source::Directory(src)),
            &mut |_| {},
        )
        .unwrap();
    }

    pub async fn open(&self) -> ReleaseRepo {
        ReleaseRepo::open(&self.release_path).await.unwrap()
    }

    /// Proposes `change` signed by the approvers numbered `who`.
    pub async fn propose(&self, change: Change, who: &[usize]) -> Outcome {
        let keys: Vec<PathBuf> = who.iter().map(|i| self.approver(*i)).collect();
        self.open()
            .await
            .propose(change, &keys, &self.online(), &Expiry::default())
            .await
            .unwrap()
    }

    /// Approves `version` in stable at 100 % with approver 1.
    pub async fn approve(&self, version: &str) {
        let outcome = self.propose(approve(version, "stable", 100), &[1]).await;
        assert!(matches!(outcome, Outcome::Published { .. }), "{outcome:?}");
    }

    pub fn metadata(&self) -> PathBuf {
        self.release_path.join("repository").join("metadata")
    }

    /// The repository verified by tough's client, expiry enforced, from
    /// the root shipped to clients.
    pub async fn verify(&self) -> tough::Repository {
        let root = std::fs::read(self.keys.join("root.json")).unwrap();
        let repo_dir = self.release_path.join("repository");
        let meta = url::Url::from_directory_path(repo_dir.join("metadata")).unwrap();
        let targets = url::Url::from_directory_path(repo_dir.join("targets")).unwrap();
        tough::RepositoryLoader::new(&root, meta, targets)
            .load()
            .await
            .unwrap()
    }
}

pub fn approve(version: &str, channel: &str, rollout: u8) -> Change {
    Change::Approve {
        version: version.into(),
        channel: channel.into(),
        notes: None,
        rollout,
    }
}

pub fn write_tree(root: &Path, files: &[(&str, &[u8])]) {
    for (path, bytes) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// Names in `dir` (one level), sorted, without the repository's `.lock`.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock")
        .collect();
    v.sort();
    v
}
