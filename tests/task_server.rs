//! bgpy's scenario against the `task_server` example, as a separate
//! process: a wrong token is refused; init, execute increase 10, execute
//! decrease 100 and terminate give request_count 3 and value 910; the
//! server then exits by itself, with code 0. Without a token it refuses to
//! start.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{call, connect};
use psvc::frame::Status;

#[actix_rt::test]
async fn the_bgpy_scenario_with_a_token_and_the_server_exiting_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::example("task_server"))
        .current_dir(dir.path())
        .env("TASK_SERVER_TOKEN", "s3cret")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port = common::first_json_line(&mut child)["port"]
        .as_u64()
        .unwrap() as u16;

    assert!(
        connect(port, "wrong").await.is_err(),
        "a wrong token is refused"
    );
    let client = connect(port, "s3cret").await.unwrap();
    let (status, body) = call(
        &client,
        "/execute",
        serde_json::json!({"op": "increase", "amount": 1}),
    )
    .await;
    assert_eq!(status, Status::ARGUMENTS);
    assert!(body.to_string().contains("not yet initialized"), "{body}");

    let (status, state) = call(&client, "/init", serde_json::json!({})).await;
    assert_eq!((status, state["value"].as_i64()), (Status::OK, Some(1000)));
    let (status, body) = call(&client, "/init", serde_json::json!({})).await;
    assert_eq!(status, Status::ARGUMENTS);
    assert!(body.to_string().contains("already initialized"), "{body}");
    call(
        &client,
        "/execute",
        serde_json::json!({"op": "increase", "amount": 10}),
    )
    .await;
    // State kept between connections, as bgpy's is between calls.
    let other = connect(port, "s3cret").await.unwrap();
    let (_, state) = call(
        &other,
        "/execute",
        serde_json::json!({"op": "decrease", "amount": 100}),
    )
    .await;
    assert_eq!(state["value"], 910);
    let (status, state) = call(&client, "/terminate", serde_json::json!({})).await;
    assert_eq!(status, Status::OK);
    assert_eq!(state, serde_json::json!({"request_count": 3, "value": 910}));

    // The server exits by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(code, Some(0));

    // No token: it refuses to start, saying why.
    let out = Command::new(common::example("task_server"))
        .current_dir(dir.path())
        .env_remove("TASK_SERVER_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("no token"), "{text}");
}
