//! Server options come from a psvc.conf section like any user section, with
//! errors that name the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use psvc::config::ConfigLoader;
use psvc::socket::{ServerOptions, SlowPeer};

#[test]
fn server_options_load_from_a_config_section() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("psvc.conf");
    std::fs::write(
        &path,
        "[PSVC]\nname = dev\n\n[server]\nmax_connections = 100\nsend_timeout = 250ms\nslow_peer = drop_newest\ntcp_keepalive = 30s\n",
    )
    .unwrap();
    let cfg = ConfigLoader::new("dev")
        .file(&path)
        .env_vars([("PSVC_SERVER__HANDSHAKE_TIMEOUT", "2s")])
        .load()
        .unwrap();
    let o: ServerOptions = cfg.section("server").unwrap();
    assert_eq!(o.max_connections, 100);
    assert_eq!(o.send_timeout, Duration::from_millis(250));
    assert_eq!(o.slow_peer, SlowPeer::DropNewest);
    assert_eq!(o.tcp_keepalive, Some(Duration::from_secs(30)));
    assert_eq!(o.handshake_timeout, Duration::from_secs(2));
    assert_eq!(
        o.send_buffer,
        ServerOptions::default().send_buffer,
        "unset keys keep defaults"
    );
}

#[test]
fn a_bad_server_option_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("psvc.conf");
    std::fs::write(&path, "[server]\nslow_peer = sometimes\n").unwrap();
    let cfg = ConfigLoader::new("dev").file(&path).load().unwrap();
    let err = cfg
        .section::<ServerOptions>("server")
        .unwrap_err()
        .to_string();
    assert!(err.contains("slow_peer"), "{err}");
}
