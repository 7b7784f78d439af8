//! A service whose listener cannot bind exits with that error and its exit
//! code, and nothing panics on the way out (no actor may touch the runtime
//! in `started()` in a way that panics while it shuts down).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

#[test]
fn echo_server_on_a_port_in_use_exits_69_with_the_bind_error_and_no_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(common::example("echo_server"))
        .args(["--listen", &addr.to_string()])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains(&format!("bind {addr}")), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "no port was announced");
}
