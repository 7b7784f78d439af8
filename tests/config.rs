//! Configuration: embedded defaults, psvc.conf (INI) or TOML, `PSVC_*`
//! environment, code overrides — in that precedence — user sections, and
//! errors that name the file, the key and the value.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use psvc::config::{ConfigLoader, Error, LogRotation};
use serde::Deserialize;

fn none() -> Vec<(String, String)> {
    Vec::new()
}

#[test]
fn embedded_defaults_need_no_file() {
    let cfg = ConfigLoader::new("demo")
        .no_file()
        .env_vars(none())
        .load()
        .unwrap();
    assert_eq!(cfg.psvc.name, "demo");
    assert_eq!(cfg.psvc.version, semver::Version::new(0, 0, 0));
    assert_eq!(cfg.psvc.log_level, "info");
    assert_eq!(cfg.psvc.log_rotation, LogRotation::Never);
    assert_eq!(cfg.psvc.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(
        cfg.psvc.release_path,
        std::path::PathBuf::from("./releases")
    );
    assert!(cfg.file().is_none());
}

#[test]
fn precedence_is_file_then_env_then_code() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("psvc.conf");
    std::fs::write(
        &path,
        "[PSVC]\nversion = 0.5.0\nlog_level = warn\nshutdown_timeout = 3s\nrelease_path = ./rel\n",
    )
    .unwrap();
    let env = [("PSVC_LOG_LEVEL", "debug"), ("PSVC_SHUTDOWN_TIMEOUT", "4s")];

    let file_only = ConfigLoader::new("s")
        .file(&path)
        .env_vars(none())
        .load()
        .unwrap();
    assert_eq!(file_only.psvc.version.to_string(), "0.5.0");
    assert_eq!(file_only.psvc.log_level, "warn");
    assert_eq!(file_only.psvc.shutdown_timeout, Duration::from_secs(3));

    let with_env = ConfigLoader::new("s")
        .file(&path)
        .env_vars(env)
        .load()
        .unwrap();
    assert_eq!(with_env.psvc.log_level, "debug");
    assert_eq!(with_env.psvc.shutdown_timeout, Duration::from_secs(4));
    assert_eq!(
        with_env.psvc.release_path,
        std::path::PathBuf::from("./rel")
    );

    let with_code = ConfigLoader::new("s")
        .file(&path)
        .env_vars(env)
        .set("PSVC.log_level", "trace")
        .load()
        .unwrap();
    assert_eq!(with_code.psvc.log_level, "trace");
    assert_eq!(with_code.psvc.shutdown_timeout, Duration::from_secs(4));
    // the user's file is never rewritten
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("log_level = warn")
    );
}

#[derive(Debug, Deserialize, PartialEq)]
struct Device {
    port: u16,
    label: String,
}

#[test]
fn user_sections_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("psvc.toml");
    std::fs::write(
        &path,
        "[PSVC]\nname = \"probe\"\n\n[device]\nport = 7\nlabel = \"bench\"\n",
    )
    .unwrap();
    let cfg = ConfigLoader::new("x")
        .file(&path)
        .env_vars([("PSVC_DEVICE__PORT", "9")])
        .load()
        .unwrap();
    assert_eq!(cfg.psvc.name, "probe");
    let dev: Device = cfg.section("device").unwrap();
    assert_eq!(
        dev,
        Device {
            port: 9,
            label: "bench".into()
        }
    );
}

#[test]
fn search_finds_psvc_conf_via_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.conf");
    std::fs::write(&path, "[PSVC]\nlog_dir = /var/log/x\n").unwrap();
    let cfg = ConfigLoader::new("x")
        .env_vars([("PSVC_CONFIG", path.to_str().unwrap())])
        .load()
        .unwrap();
    assert_eq!(cfg.file(), Some(path.as_path()));
    assert_eq!(cfg.psvc.log_dir, std::path::PathBuf::from("/var/log/x"));
}

fn load_err(text: &str) -> (Error, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("psvc.conf");
    std::fs::write(&path, text).unwrap();
    let err = ConfigLoader::new("x")
        .file(&path)
        .env_vars(none())
        .load()
        .unwrap_err();
    (err, path.display().to_string())
}

#[test]
fn bad_values_name_file_key_and_value() {
    let (err, path) = load_err("[PSVC]\nversion = one-point-oh\n");
    let msg = err.to_string();
    assert!(matches!(err, Error::Invalid { .. }), "{msg}");
    assert!(
        msg.contains(&path) && msg.contains("PSVC.version") && msg.contains("one-point-oh"),
        "{msg}"
    );

    let (err, path) = load_err("[PSVC]\nshutdown_timeout = soon\n");
    let msg = err.to_string();
    assert!(
        msg.contains(&path) && msg.contains("PSVC.shutdown_timeout") && msg.contains("soon"),
        "{msg}"
    );

    let (err, path) = load_err("[PSVC]\nlog_level = info,=[bad\n");
    let msg = err.to_string();
    assert!(
        msg.contains(&path) && msg.contains("PSVC.log_level") && msg.contains("info,=[bad"),
        "{msg}"
    );

    let (err, path) = load_err("[PSVC]\nlog_rotation = weekly\n");
    let msg = err.to_string();
    assert!(
        msg.contains(&path) && msg.contains("PSVC.log_rotation") && msg.contains("weekly"),
        "{msg}"
    );

    let (err, path) = load_err("[PSVC]\nlog_levle = debug\n");
    let msg = err.to_string();
    assert!(
        msg.contains(&path) && msg.contains("PSVC.log_levle") && msg.contains("unknown key"),
        "{msg}"
    );
}

#[test]
fn bad_env_value_names_the_variable() {
    let err = ConfigLoader::new("x")
        .no_file()
        .env_vars([("PSVC_LOG_MAX_FILES", "many")])
        .load()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("environment variable PSVC_LOG_MAX_FILES") && msg.contains("many"),
        "{msg}"
    );
}

#[test]
fn missing_or_unparsable_file_is_an_error() {
    let err = ConfigLoader::new("x")
        .file("/nonexistent/psvc.conf")
        .env_vars(none())
        .load()
        .unwrap_err();
    assert!(matches!(err, Error::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/psvc.conf"));

    let (err, path) = load_err("[PSVC\nversion = 1\n");
    assert!(matches!(err, Error::Parse { .. }), "{err}");
    assert!(err.to_string().contains(&path));
}
