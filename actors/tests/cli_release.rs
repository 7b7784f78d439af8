//! The release verbs of the `psvc` tool, as an operator runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn psvc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_psvc"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn build_approve_deprecate_and_list_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The release path comes from psvc.conf, as in a service's directory.
    std::fs::write(dir.join("psvc.conf"), "[PSVC]\nrelease_path = ./rel\n").unwrap();
    std::fs::create_dir_all(dir.join("dist")).unwrap();
    std::fs::write(dir.join("dist/app"), "v1").unwrap();

    let keys = ok_json(&psvc(
        dir,
        &[
            "keys",
            "init",
            "--approvers",
            "3",
            "--threshold",
            "2",
            "--json",
        ],
    ));
    assert_eq!(keys["threshold"], 2);
    assert_eq!(keys["approver_keys"].as_array().unwrap().len(), 3);
    assert!(dir.join("rel/repository/metadata/timestamp.json").exists());

    let built = ok_json(&psvc(
        dir,
        &["build", "--version", "1.0.0", "--dir", "dist", "--json"],
    ));
    assert_eq!(built["status"], "draft");
    assert_eq!(built["files"][0]["path"], "app");
    std::fs::write(dir.join("dist/app"), "v2").unwrap();
    ok_json(&psvc(
        dir,
        &[
            "build",
            "--version",
            "1.1.0",
            "--dir",
            "dist",
            "--notes",
            "faster",
            "--json",
        ],
    ));

    // Bad versions and wrong keys: exit 65 with a message.
    let bad = psvc(dir, &["build", "--version", "1.0", "--dir", "dist"]);
    assert_eq!(bad.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("semver"));
    let wrong = psvc(dir, &["approve", "1.0.0", "--key", "keys/snapshot.pk8"]);
    assert_eq!(wrong.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not an approver"));

    for version in ["1.0.0", "1.1.0"] {
        let first = ok_json(&psvc(
            dir,
            &["approve", version, "--key", "keys/approver-1.pk8", "--json"],
        ));
        assert_eq!(first["outcome"], "pending");
        assert_eq!(first["signatures"], 1);
        let second = ok_json(&psvc(
            dir,
            &["approve", version, "--key", "keys/approver-3.pk8", "--json"],
        ));
        assert_eq!(second["outcome"], "published");
    }
    let dep = ok_json(&psvc(
        dir,
        &[
            "deprecate",
            "1.1.0",
            "--to",
            "1.0.0",
            "--key",
            "keys/approver-2.pk8",
            "--key",
            "keys/approver-3.pk8",
            "--json",
        ],
    ));
    assert_eq!(dep["outcome"], "published");
    std::fs::write(dir.join("dist/app"), "v3").unwrap();
    ok_json(&psvc(
        dir,
        &["build", "--version", "1.2.0", "--dir", "dist", "--json"],
    ));

    let list = ok_json(&psvc(dir, &["releases", "list", "--json"]));
    let releases = list["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 2);
    assert_eq!(releases[0]["version"], "1.0.0");
    assert_eq!(releases[0]["status"], "approved");
    assert_eq!(releases[1]["status"], "deprecated");
    assert_eq!(releases[1]["rollback_target"], "1.0.0");
    assert_eq!(releases[1]["notes"], "faster");
    assert_eq!(list["drafts"], serde_json::json!(["1.2.0"]));

    let text = psvc(dir, &["releases", "list"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("deprecated→1.0.0"), "{text}");
    assert!(text.contains("1.2.0") && text.contains("draft"), "{text}");

    // An approved version cannot be rebuilt.
    let again = psvc(dir, &["build", "--version", "1.0.0", "--dir", "dist"]);
    assert_eq!(again.status.code(), Some(65));

    // Rotating the approver keys: root 2; the retired keys approve
    // nothing, the new ones do.
    let rotated = ok_json(&psvc(dir, &["keys", "rotate", "targets", "--json"]));
    assert_eq!(rotated["root_version"], 2);
    assert_eq!(rotated["retired"].as_array().unwrap().len(), 3);
    assert!(dir.join("rel/repository/metadata/2.root.json").exists());
    let old = psvc(
        dir,
        &[
            "approve",
            "1.2.0",
            "--key",
            "keys/retired/approver-1.root-1.pk8",
        ],
    );
    assert_eq!(old.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&old.stderr).contains("not an approver"));
    let new = ok_json(&psvc(
        dir,
        &[
            "approve",
            "1.2.0",
            "--key",
            "keys/approver-1.pk8",
            "--key",
            "keys/approver-2.pk8",
            "--json",
        ],
    ));
    assert_eq!(new["outcome"], "published");
    let list = ok_json(&psvc(dir, &["releases", "list", "--json"]));
    assert_eq!(list["releases"][2]["version"], "1.2.0");
    let unknown = psvc(dir, &["keys", "rotate", "everything"]);
    assert_eq!(unknown.status.code(), Some(64), "usage error");
}

#[test]
fn releases_serve_answers_the_client_verbs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("dist")).unwrap();
    std::fs::write(dir.join("dist/app"), "served").unwrap();
    let rp = ["--release-path", "rel"];
    ok_json(&psvc(dir, &[&["keys", "init", "--json"][..], &rp].concat()));
    ok_json(&psvc(
        dir,
        &[
            &["build", "--version", "3.0.0", "--dir", "dist", "--json"][..],
            &rp,
        ]
        .concat(),
    ));
    ok_json(&psvc(
        dir,
        &[
            &["approve", "3.0.0", "--key", "keys/approver-1.pk8", "--json"][..],
            &rp,
        ]
        .concat(),
    ));

    let mut server = Command::new(env!("CARGO_BIN_EXE_psvc"))
        .current_dir(dir)
        .args([
            "releases",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--release-path",
            "rel",
            "--keys",
            "keys",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = serde_json::from_str::<serde_json::Value>(&line).unwrap()["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let latest = ok_json(&psvc(
        dir,
        &["call", &format!("vsoa://{addr}/release/latest"), "--json"],
    ));
    assert_eq!(latest["param"]["version"], "3.0.0", "{latest}");
    let got = psvc(
        dir,
        &[
            "stream",
            "get",
            &format!("vsoa://{addr}/release/file"),
            "out.bin",
            "--param",
            r#"{"name":"3.0.0/app","offset":2}"#,
        ],
    );
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(std::fs::read(dir.join("out.bin")).unwrap(), b"rved");
    let _ = server.kill();
    let _ = server.wait();
}
