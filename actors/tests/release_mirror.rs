//! The repository as a static mirror: served by a real nginx (Debian's,
//! installed by `.ci/run`) with the configuration in
//! docs/nginx-releases.conf, and verified by tough's own HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Repo;

struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("nginx is not installed (apt-get install nginx; .ci/run does it)");
}

/// nginx in the foreground, as this user, serving `root` on 127.0.0.1.
fn nginx(dir: &Path, root: &Path) -> Nginx {
    let snippet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/nginx-releases.conf");
    let snippet = snippet.canonicalize().unwrap();
    for _attempt in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
                 fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
                 server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    include {snippet};\n  }}\n}}\n",
                dir = dir.display(),
                root = root.display(),
                snippet = snippet.display(),
            ),
        )
        .unwrap();
        let mut child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Nginx { child, port };
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                eprintln!("nginx exited {status}: {err} (retrying with another port)");
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("nginx did not start");
}

/// The response head of a GET, as text.
fn head(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split("\r\n\r\n").next().unwrap().to_owned()
}

fn loader(repo: &Repo, port: u16) -> tough::RepositoryLoader<'static> {
    let root: &'static Vec<u8> = Box::leak(Box::new(
        std::fs::read(repo.keys.join("root.json")).unwrap(),
    ));
    let base = format!("http://127.0.0.1:{port}");
    tough::RepositoryLoader::new(
        root,
        url::Url::parse(&format!("{base}/metadata/")).unwrap(),
        url::Url::parse(&format!("{base}/targets/")).unwrap(),
    )
    .transport(tough::HttpTransportBuilder::new().tries(1).build())
}

#[actix_rt::test]
async fn nginx_serves_a_repository_that_tough_verifies() {
    let repo = Repo::new(1, 1).await;
    let app: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    repo.build("1.0.0", &[("bin/app", &app)]);
    repo.build("1.1.0", &[("bin/app", b"unapproved")]);
    repo.approve("1.0.0").await;
    let nginx = nginx(repo.dir.path(), &repo.release_path.join("repository"));

    // The cache headers the docs promise.
    let ts = head(nginx.port, "/metadata/timestamp.json");
    assert!(ts.starts_with("HTTP/1.1 200"), "{ts}");
    assert!(
        ts.to_ascii_lowercase().contains("cache-control: no-cache"),
        "{ts}"
    );
    let root = head(nginx.port, "/metadata/1.root.json");
    assert!(root.contains("immutable"), "{root}");
    assert!(head(nginx.port, "/").starts_with("HTTP/1.1 404"));

    let loaded = loader(&repo, nginx.port).load().await.unwrap();
    let name = tough::TargetName::new("1.0.0/bin/app").unwrap();
    let stream = loaded.read_target(&name).await.unwrap().unwrap();
    assert_eq!(tough::IntoVec::into_vec(stream).await.unwrap(), app);
    // The draft is on disk, not in the signed metadata: tough has no such target.
    let draft = tough::TargetName::new("1.1.0/bin/app").unwrap();
    assert!(loaded.read_target(&draft).await.unwrap().is_none());

    // A mirror that alters a file is caught by the signed hash.
    let targets = repo.release_path.join("repository/targets");
    let served = std::fs::read_dir(&targets)
        .unwrap()
        .map(|e| e.unwrap().path().join("bin/app"))
        .find(|p| p.exists())
        .unwrap();
    let mut evil = app.clone();
    evil[100] ^= 1;
    std::fs::write(&served, &evil).unwrap();
    let stream = loaded.read_target(&name).await.unwrap().unwrap();
    assert!(
        tough::IntoVec::into_vec(stream).await.is_err(),
        "tampered target accepted"
    );

    // A mirror that serves an expired timestamp is refused (freeze).
    let mut open = repo.open().await;
    let short = psvc_actors::release::Expiry {
        timestamp: Duration::from_secs(1),
        ..Default::default()
    };
    open.refresh(&repo.online(), &short, Duration::ZERO)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if loader(&repo, nginx.port).load().await.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an expired timestamp was still accepted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
