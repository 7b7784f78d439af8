//! The Builder: semver, cargo builds of a real crate, directories,
//! excludes, status.json, and that a failed build leaves nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::path::Path;

use actix::Actor;
use common::{names, write_tree};
use psvc_actors::release::build::{Build, parse_version};
use psvc_actors::release::{
    BuildError, BuildSpec, Builder, CargoBuild, Source, Status, build_release,
};
use sha2::{Digest, Sha256};

fn dir_spec(release_path: &Path, version: &str, src: &Path) -> BuildSpec {
    BuildSpec::new(version, release_path, Source::Directory(src.to_path_buf()))
}

#[test]
fn semver_two_is_required_as_written() {
    for bad in [
        "",
        "1",
        "1.0",
        "v1.0.0",
        "01.0.0",
        "1.00.0",
        "1.0.0 ",
        " 1.0.0",
        "1.0.0-",
        "1.0.0+",
        "1.2.3.4",
        "1.0.0-01",
        "latest",
        "1.0.0/../x",
    ] {
        let err = parse_version(bad).unwrap_err();
        assert!(
            matches!(err, BuildError::InvalidVersion { .. }),
            "{bad:?} gave {err:?}"
        );
        assert!(err.to_string().contains("semver 2.0"), "{err}");
    }
    for good in [
        "0.0.1",
        "1.2.3",
        "10.20.30",
        "1.0.0-rc.1",
        "1.0.0-alpha.beta+exp.sha.5114f85",
        "2.0.0+build.7",
    ] {
        parse_version(good).unwrap();
    }
}

#[test]
fn a_directory_is_released_with_excludes_hashes_and_status() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("dist");
    write_tree(
        &src,
        &[
            ("bin/app", b"#!/bin/sh\necho app\n"),
            ("lib/libx.so", &[7u8; 5000]),
            ("share/readme.txt", b"read me"),
            ("app.log", b"log line"),
            ("psvc.conf", b"[PSVC]"),
            ("logs/old.log", b"old"),
            ("cache/tmp.bin", b"x"),
        ],
    );
    let release_path = tmp.path().join("releases");
    let mut spec = dir_spec(&release_path, "1.2.0", &src);
    spec.exclude = Some(vec!["*.log".into(), "*.conf".into(), "cache/**".into()]);
    spec.notes = "first".into();
    spec.rollback_target = Some("1.1.0".into());
    let extra = tmp.path().join("LICENSE");
    std::fs::write(&extra, "BSD").unwrap();
    spec.extra_files = vec![extra];
    let mut events = 0;
    let status = build_release(&spec, &mut |_| events += 1).unwrap();
    assert!(events >= 4, "progress events: {events}");

    let paths: Vec<&str> = status.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["LICENSE", "bin/app", "lib/libx.so", "share/readme.txt"]
    );
    assert_eq!(status.status, Status::Draft);
    assert_eq!(status.version, "1.2.0");
    assert_eq!(status.exclude_patterns, ["*.log", "*.conf", "cache/**"]);
    assert_eq!(status.release_notes, "first");
    assert_eq!(status.rollback_target.as_deref(), Some("1.1.0"));
    assert!(status.source.starts_with("directory "), "{}", status.source);
    assert!(!status.target.is_empty());
    jiff::Timestamp::from_str_strict(&status.build_time);

    let dir = release_path.join("1.2.0");
    for f in &status.files {
        let bytes = std::fs::read(dir.join("files").join(&f.path)).unwrap();
        assert_eq!(bytes.len() as u64, f.size);
        assert_eq!(hex::encode(Sha256::digest(&bytes)), f.sha256, "{}", f.path);
    }
    // status.json on disk is what was returned, with every field.
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("status.json")).unwrap()).unwrap();
    for key in [
        "version",
        "status",
        "build_time",
        "target",
        "files",
        "exclude_patterns",
        "git_commit",
        "toolchain",
        "source",
        "release_notes",
        "rollback_target",
    ] {
        assert!(on_disk.get(key).is_some(), "status.json lacks {key}");
    }
    assert_eq!(on_disk["status"], "draft");
    assert_eq!(names(&release_path), ["1.2.0"], "no staging left");
}

trait StrictParse {
    fn from_str_strict(s: &str);
}
impl StrictParse for jiff::Timestamp {
    fn from_str_strict(s: &str) {
        s.parse::<jiff::Timestamp>()
            .unwrap_or_else(|e| panic!("build_time {s:?}: {e}"));
    }
}

#[test]
fn default_excludes_apply_when_none_are_given() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("dist");
    write_tree(
        &src,
        &[
            ("app", b"a"),
            ("x.log", b"l"),
            ("psvc.conf", b"c"),
            (".git/HEAD", b"h"),
        ],
    );
    let status =
        build_release(&dir_spec(&tmp.path().join("r"), "0.1.0", &src), &mut |_| {}).unwrap();
    let paths: Vec<&str> = status.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["app"]);
    assert!(status.exclude_patterns.contains(&"*.log".to_owned()));
}

#[test]
fn the_fixture_crate_is_built_with_cargo() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hello-app/Cargo.toml");
    let mut cargo = CargoBuild::new(&manifest);
    cargo.bins = vec!["hello-app".into()];
    cargo.target_dir = Some(tmp.path().join("target"));
    let release_path = tmp.path().join("releases");
    let status = build_release(
        &BuildSpec::new("0.1.0", &release_path, Source::Cargo(cargo)),
        &mut |_| {},
    )
    .unwrap();
    let paths: Vec<&str> = status.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["hello-app"], "only the chosen --bin");
    assert!(
        status.source.contains("--bin hello-app"),
        "{}",
        status.source
    );
    assert!(
        status.source.contains("--profile release"),
        "{}",
        status.source
    );
    assert!(
        status
            .toolchain
            .as_deref()
            .is_some_and(|t| t.starts_with("rustc "))
    );
    assert!(status.target.contains('-'), "{}", status.target);
    // The released binary runs.
    let out = std::process::Command::new(release_path.join("0.1.0/files/hello-app"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello-app 0.1.0"
    );
}

#[test]
fn a_failed_build_leaves_nothing_and_keeps_the_previous_draft() {
    let tmp = tempfile::tempdir().unwrap();
    let release_path = tmp.path().join("releases");
    let src = tmp.path().join("dist");
    write_tree(&src, &[("app", b"v1")]);
    build_release(&dir_spec(&release_path, "1.0.0", &src), &mut |_| {}).unwrap();
    let before = std::fs::read(release_path.join("1.0.0/status.json")).unwrap();

    // A crate that does not compile.
    let broken = tmp.path().join("broken");
    write_tree(
        &broken,
        &[
            ("Cargo.toml", b"[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n"),
            ("src/main.rs", b"fn main() { this does not compile }"),
        ],
    );
    let mut cargo = CargoBuild::new(broken.join("Cargo.toml"));
    cargo.target_dir = Some(tmp.path().join("target"));
    let err = build_release(
        &BuildSpec::new("1.0.0", &release_path, Source::Cargo(cargo)),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, BuildError::Cargo { .. }), "{err:?}");
    assert!(
        err.to_string().contains("error"),
        "the compiler's output is shown: {err}"
    );

    // A directory that does not exist, and one whose files are all excluded.
    let err = build_release(
        &dir_spec(&release_path, "1.1.0", &tmp.path().join("nope")),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, BuildError::Io { .. }), "{err:?}");
    let only_logs = tmp.path().join("logs");
    write_tree(&only_logs, &[("a.log", b"x")]);
    let err =
        build_release(&dir_spec(&release_path, "1.1.0", &only_logs), &mut |_| {}).unwrap_err();
    assert!(matches!(err, BuildError::Empty(_)), "{err:?}");
    let bad_glob = BuildSpec {
        exclude: Some(vec!["a[".into()]),
        ..dir_spec(&release_path, "1.1.0", &src)
    };
    let err = build_release(&bad_glob, &mut |_| {}).unwrap_err();
    assert!(matches!(err, BuildError::Pattern { .. }), "{err:?}");

    assert_eq!(names(&release_path), ["1.0.0"], "nothing left behind");
    assert_eq!(
        std::fs::read(release_path.join("1.0.0/status.json")).unwrap(),
        before
    );

    // A new draft of the same version replaces the old one whole.
    write_tree(&src, &[("app", b"v1 fixed"), ("more", b"m")]);
    let status = build_release(&dir_spec(&release_path, "1.0.0", &src), &mut |_| {}).unwrap();
    assert_eq!(status.files.len(), 2);
    assert_eq!(names(&release_path), ["1.0.0"]);
}

#[actix_rt::test]
async fn the_builder_actor_builds_one_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("dist");
    write_tree(&src, &[("app", b"x")]);
    let release_path = tmp.path().join("releases");
    let builder = Builder.start();
    let a = builder.send(Build(dir_spec(&release_path, "1.0.0", &src)));
    let b = builder.send(Build(dir_spec(&release_path, "1.0.1", &src)));
    let bad = builder.send(Build(dir_spec(&release_path, "1.0", &src)));
    let (a, b, bad) = futures::join!(a, b, bad);
    assert_eq!(a.unwrap().unwrap().version, "1.0.0");
    assert_eq!(b.unwrap().unwrap().version, "1.0.1");
    assert!(matches!(
        bad.unwrap(),
        Err(BuildError::InvalidVersion { .. })
    ));
    assert_eq!(names(&release_path), ["1.0.0", "1.0.1"]);
}
