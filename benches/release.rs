//! Release benchmark harness: the Releaser's update check and file serving, and the Builder's
//! cost, each against a baseline measured in the same run.
//!
//! ```sh
//! cargo bench -p psvc-benches --bench release                      # full: 3 rounds, 1 GiB
//! PSVC_BENCH_QUICK=1 cargo bench -p psvc-benches --bench release   # 1 round, 64 MiB
//! ```
//!
//! - **R1 update check**: 100 concurrent checkers (each its own `psvc::client::Client` and
//!   connection) call the Releaser in closed loops for a fixed time: `/release/latest` (what
//!   an updater asks first) and `/release/metadata/timestamp.json` (a TUF check when nothing
//!   changed). Baseline: the same clients calling an `/echo` route of the same server, i.e.
//!   psvc's bare RPC round trip. p50 / p99 / throughput.
//! - **R2 serving a target**: one client reads a 1 GiB approved target through
//!   `/release/file` (file on disk, page cache warm), against a raw tokio socket writing the
//!   same number of bytes from memory, and psvc's stream tunnel from memory (the Commander
//!   issue's `/stream/download`). GB/s at the client (reads of 256 KiB, discarded).
//! - **R3 build overhead**: `build_release` of a 256 MiB directory (64 files) against
//!   `cp -r` + `sha256sum` of the same tree; and `build_release` of the fixture crate against
//!   `cargo build --release` alone on the same (warm) target directory.
//!
//! - **U1 download + verify**: the Updater's `download` of the same 1 GiB target from the
//!   Releaser (resumable, length-bounded, SHA-256 on a thread overlapping the transfer, written
//!   and fsynced to disk), against the raw tokio socket of R2.
//! - **U2 flip**: `InstallRoot::flip` (new symlink, rename over `current`, fsync of the
//!   directory), median of 50.
//!
//! Server and client run as two actix systems on two threads of this process; rounds are
//! interleaved (baseline, contenders, …) and each figure is the median over rounds. The
//! report is printed and written to `<target>/bench-results/release.md`. Without `--bench`
//! (`cargo test --all-targets`) a smoke pass runs with small sizes and writes nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix::Actor;
use hdrhistogram::Histogram;
use psvc::client::{Client, ClientOptions, Rpc};
use psvc::commander::{Commander, Request, Response};
use psvc::frame::Status;
use psvc::stream::Tunnel;
use psvc_actors::release::{
    BuildSpec, CargoBuild, Change, Expiry, KeysSpec, OnlineKeys, ReleaseRepo, Releaser,
    ReleaserOptions, Source, build_release, init_keys,
};
use psvc_benches::report::{harness_main, median};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Res<T> = Result<T, String>;

const CHUNK: usize = 256 * 1024;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Writes `size` pattern bytes in [`CHUNK`] writes, then shuts the stream down; false if the
/// peer went away.
async fn write_pattern(s: &mut (impl tokio::io::AsyncWrite + Unpin), size: u64) -> bool {
    let chunk = pattern(CHUNK);
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        if s.write_all(&chunk[..n]).await.is_err() {
            return false;
        }
        left -= n as u64;
    }
    s.shutdown().await.is_ok()
}

/// Ports of the servers the client measures.
struct Ports {
    psvc: u16,
    raw: u16,
}

/// The server side: a psvc server with the Releaser's routes, `/echo` and `/stream/raw`,
/// plus a raw tokio stream server; runs until `stop` is dropped.
fn start_servers(release_path: PathBuf, size: u64) -> Res<(Ports, mpsc::Sender<()>)> {
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let system = actix::System::new();
        system.block_on(async move {
            let releaser = Releaser::new(ReleaserOptions::new(&release_path)).start();
            let commander = Releaser::routes(Commander::new(), releaser)
                .route("/echo", |req: Request| async move {
                    Ok(Response::ok().param(req.param).data(req.data))
                })
                .route("/stream/raw", move |req: Request| async move {
                    let tunnel = Tunnel::open(&req)
                        .map_err(|e| psvc::commander::CommandError::Failed(e.to_string()))?;
                    let port = tunnel.port();
                    actix::spawn(async move {
                        let Ok(mut s) = tunnel.accept().await else {
                            return;
                        };
                        if write_pattern(&mut s, size).await {
                            let mut b = [0u8; 1];
                            let _ =
                                tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await;
                        }
                    });
                    Ok(Response::ok().tunnel(port))
                });
            let server = match psvc::socket::Server::new(psvc::socket::Auth::anonymous())
                .commands(commander.commands())
                .start("127.0.0.1:0")
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let raw = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let raw_port = raw.local_addr().map(|a| a.port()).unwrap_or(0);
            actix::spawn(async move {
                while let Ok((mut s, _)) = raw.accept().await {
                    let _ = s.set_nodelay(true);
                    actix::spawn(async move {
                        write_pattern(&mut s, size).await;
                    });
                }
            });
            let _ = tx.send(Ok(Ports {
                psvc: server.local_addr().port(),
                raw: raw_port,
            }));
            // Wait for the stop signal without blocking the arbiter.
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
            server.stop();
        });
    });
    let ports = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|e| e.to_string())??;
    Ok((ports, stop_tx))
}

/// U1: GB/s of the Updater's download (into `dir`, removed after).
async fn updater_download(
    ports: &Ports,
    wanted: &psvc_actors::update::download::Wanted,
    dir: &Path,
) -> Res<f64> {
    use psvc_actors::update::download::{Limits, download};
    let source: psvc_actors::update::source::Source = format!("vsoa://127.0.0.1:{}", ports.psvc)
        .parse()
        .map_err(|e| format!("{e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let file = download(&source, wanted, dir, &Limits::default(), &mut |_| {})
        .await
        .map_err(|e| e.to_string())?;
    let secs = t0.elapsed().as_secs_f64();
    std::fs::remove_file(&file).map_err(|e| e.to_string())?;
    Ok(wanted.length as f64 / secs / 1e9)
}

/// U2: median ms of `flip` between two installed versions.
fn flips(dir: &Path, n: usize) -> Res<f64> {
    use psvc_actors::update::install::{InstallRoot, StagedFile};
    let root = InstallRoot::open(dir.join("install")).map_err(|e| e.to_string())?;
    let f = dir.join("flip-file");
    std::fs::write(&f, b"x").map_err(|e| e.to_string())?;
    for v in ["1.0.0", "1.0.1"] {
        root.install(
            v,
            &[StagedFile {
                from: f.clone(),
                path: "app".into(),
                mode: 0o755,
            }],
        )
        .map_err(|e| e.to_string())?;
    }
    let mut times = Vec::new();
    for i in 0..n {
        let v = if i % 2 == 0 { "1.0.0" } else { "1.0.1" };
        let t0 = Instant::now();
        root.flip(v).map_err(|e| e.to_string())?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(med(&times))
}

/// A repository with one approved release holding `big.bin` of `size` bytes.
async fn make_repo(dir: &Path, size: usize) -> Res<PathBuf> {
    let release_path = dir.join("releases");
    let keys = dir.join("keys");
    init_keys(&KeysSpec::new(&keys, &release_path))
        .await
        .map_err(|e| e.to_string())?;
    let src = dir.join("dist");
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(src.join("big.bin")).map_err(|e| e.to_string())?,
        );
        let chunk = pattern(CHUNK);
        let mut left = size;
        while left > 0 {
            let n = left.min(CHUNK);
            f.write_all(&chunk[..n]).map_err(|e| e.to_string())?;
            left -= n;
        }
    }
    std::fs::write(src.join("app"), b"app").map_err(|e| e.to_string())?;
    build_release(
        &BuildSpec::new("1.0.0", &release_path, Source::Directory(src.clone())),
        &mut |_| {},
    )
    .map_err(|e| e.to_string())?;
    std::fs::remove_dir_all(&src).map_err(|e| e.to_string())?;
    let mut repo = ReleaseRepo::open(&release_path)
        .await
        .map_err(|e| e.to_string())?;
    repo.propose(
        Change::Approve {
            version: "1.0.0".into(),
            channel: "stable".into(),
            notes: None,
            rollout: 100,
        },
        &[keys.join("approver-1.pk8")],
        &OnlineKeys::in_dir(&keys),
        &Expiry::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    // The draft's copy is not served; drop it to halve the disk used.
    std::fs::remove_dir_all(release_path.join("1.0.0/files")).map_err(|e| e.to_string())?;
    Ok(release_path)
}

/// R1: `checkers` closed loops for `secs` on `rpc()`; (p50 µs, p99 µs, calls/s).
async fn checks(
    port: u16,
    checkers: usize,
    secs: f64,
    url: &'static str,
    param: &'static str,
) -> Res<(f64, f64, f64)> {
    let mut clients = Vec::new();
    for _ in 0..checkers {
        let c = Client::connect(ClientOptions::new(format!("127.0.0.1:{port}")))
            .await
            .map_err(|e| e.to_string())?;
        clients.push(c);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            actix::spawn(async move {
                let mut hist = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let reply = c
                        .rpc(Rpc::get(url).param(param))
                        .await
                        .map_err(|e| e.to_string())?;
                    let us = t0.elapsed().as_micros() as u64;
                    if reply.status != Status::OK {
                        return Err(format!("{url}: status {}", reply.status.0));
                    }
                    hist.record(us.max(1)).map_err(|e| e.to_string())?;
                }
                c.close();
                Ok::<_, String>(hist)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    for t in tasks {
        let h = t.await.map_err(|e| e.to_string())??;
        all.add(&h).map_err(|e| e.to_string())?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((
        all.value_at_quantile(0.5) as f64,
        all.value_at_quantile(0.99) as f64,
        all.len() as f64 / secs,
    ))
}

async fn read_all(s: impl tokio::io::AsyncRead + Unpin) -> Res<u64> {
    read_hashing(s, false).await
}

/// Reads to the end, hashing with SHA-256 inline when `hash`.
async fn read_hashing(mut s: impl tokio::io::AsyncRead + Unpin, hash: bool) -> Res<u64> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            if hash {
                std::hint::black_box(hasher.finalize());
            }
            return Ok(total);
        }
        if hash {
            hasher.update(&buf[..n]);
        }
        total += n as u64;
    }
}

/// U1 baseline: the same work as the Updater's download done plainly: raw socket, SHA-256
/// inline, buffered write to a file in `dir`, fsync. GB/s.
async fn raw_download(ports: &Ports, size: u64, dir: &Path) -> Res<f64> {
    use sha2::Digest;
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let path = dir.join("raw-download.bin");
    let t0 = Instant::now();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", ports.raw))
        .await
        .map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&path).map_err(|e| e.to_string())?,
    );
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        total += n as u64;
    }
    let file = out.into_inner().map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    std::hint::black_box(hasher.finalize());
    let secs = t0.elapsed().as_secs_f64();
    std::fs::remove_file(&path).map_err(|e| e.to_string())?;
    if total != size {
        return Err(format!("raw download: {total} of {size} bytes"));
    }
    Ok(size as f64 / secs / 1e9)
}

/// R2: GB/s of one transfer.
async fn transfer(ports: &Ports, who: &str, size: u64) -> Res<f64> {
    let t0 = Instant::now();
    let got = if who == "raw" {
        let s = tokio::net::TcpStream::connect(("127.0.0.1", ports.raw))
            .await
            .map_err(|e| e.to_string())?;
        read_all(s).await?
    } else {
        let client = Client::connect(ClientOptions::new(format!("127.0.0.1:{}", ports.psvc)))
            .await
            .map_err(|e| e.to_string())?;
        let rpc = if who == "tunnel" {
            Rpc::get("/stream/raw")
        } else {
            Rpc::get("/release/file").param(r#"{"name":"1.0.0/big.bin"}"#)
        };
        let reply = client.rpc(rpc).await.map_err(|e| e.to_string())?;
        if reply.status != Status::OK {
            return Err(format!(
                "{who}: status {}: {}",
                reply.status.0,
                String::from_utf8_lossy(&reply.param)
            ));
        }
        let stream = client
            .open_stream(&reply)
            .await
            .map_err(|e| e.to_string())?;
        let n = read_all(stream).await?;
        client.close();
        n
    };
    let secs = t0.elapsed().as_secs_f64();
    if got != size {
        return Err(format!("{who}: {got} bytes, expected {size}"));
    }
    Ok(size as f64 / secs / 1e9)
}

fn time(f: impl FnOnce() -> Res<()>) -> Res<f64> {
    let t0 = Instant::now();
    f()?;
    Ok(t0.elapsed().as_secs_f64())
}

/// R3: (baseline s, psvc s) for a directory of `files` × `each` bytes.
fn build_dir(dir: &Path, files: usize, each: usize, round: usize) -> Res<(f64, f64)> {
    let src = dir.join("tree");
    if !src.exists() {
        std::fs::create_dir_all(src.join("lib")).map_err(|e| e.to_string())?;
        let data = pattern(each);
        for i in 0..files {
            std::fs::write(src.join(format!("lib/part{i:03}.bin")), &data)
                .map_err(|e| e.to_string())?;
        }
    }
    let base_dst = dir.join(format!("copy{round}"));
    let baseline = time(|| {
        let script = format!(
            "cp -r '{}' '{}' && find '{}' -type f -exec sha256sum {{}} + > /dev/null && sync -f '{}'",
            src.display(),
            base_dst.display(),
            base_dst.display(),
            base_dst.display()
        );
        let st = std::process::Command::new("sh")
            .args(["-c", &script])
            .status()
            .map_err(|e| e.to_string())?;
        st.success()
            .then_some(())
            .ok_or_else(|| format!("cp/sha256sum: {st}"))
    })?;
    let rel = dir.join(format!("rel{round}"));
    let psvc = time(|| {
        build_release(
            &BuildSpec::new("1.0.0", &rel, Source::Directory(src.clone())),
            &mut |_| {},
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    })?;
    let _ = std::fs::remove_dir_all(&base_dst);
    let _ = std::fs::remove_dir_all(&rel);
    Ok((baseline, psvc))
}

/// R3: (cargo build s, build_release s) of the fixture crate on a warm target dir.
fn build_cargo(dir: &Path, round: usize) -> Res<(f64, f64)> {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hello-app/Cargo.toml");
    let target = dir.join("cargo-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let run_cargo = || -> Res<()> {
        let st = std::process::Command::new(&cargo)
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .status()
            .map_err(|e| e.to_string())?;
        st.success()
            .then_some(())
            .ok_or_else(|| format!("cargo: {st}"))
    };
    if round == 0 {
        run_cargo()?; // warm
    }
    let plain = time(run_cargo)?;
    let mut spec = CargoBuild::new(&manifest);
    spec.target_dir = Some(target.clone());
    let rel = dir.join(format!("cargo-rel{round}"));
    let psvc = time(|| {
        build_release(
            &BuildSpec::new("1.0.0", &rel, Source::Cargo(spec)),
            &mut |_| {},
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    })?;
    let _ = std::fs::remove_dir_all(&rel);
    Ok((plain, psvc))
}

/// D1: a one-line code change to the fixture crate, built twice with
/// `cargo build --release`; the patch from the old executable to the new
/// one against the new one in full and zstd-compressed (level 19).
/// Returns (full, zstd full, patch bytes, make s, apply s).
fn delta_cargo(dir: &Path) -> Res<(u64, u64, u64, f64, f64)> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hello-app");
    let krate = dir.join("delta-crate");
    std::fs::create_dir_all(krate.join("src")).map_err(|e| e.to_string())?;
    for f in ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/tool.rs"] {
        std::fs::copy(fixture.join(f), krate.join(f)).map_err(|e| e.to_string())?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = |out: &str| -> Res<Vec<u8>> {
        let st = std::process::Command::new(&cargo)
            .args(["build", "--release", "--quiet", "--bin", "hello-app"])
            .current_dir(&krate)
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("cargo: {st}"));
        }
        let bin =
            std::fs::read(krate.join("target/release/hello-app")).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(out), &bin).map_err(|e| e.to_string())?;
        Ok(bin)
    };
    let old = build("hello-v1")?;
    let main = krate.join("src/main.rs");
    let src = std::fs::read_to_string(&main).map_err(|e| e.to_string())?;
    let changed = src.replacen(
        "fn main() {\n",
        "fn main() {\n    println!(\"one more line\");\n",
        1,
    );
    if changed == src {
        return Err("the fixture's main.rs changed shape".into());
    }
    std::fs::write(&main, changed).map_err(|e| e.to_string())?;
    let new = build("hello-v2")?;
    let t = Instant::now();
    let patch = psvc_actors::release::delta::make_patch(&old, &new).map_err(|e| e.to_string())?;
    let make = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut out = Vec::with_capacity(new.len());
    psvc_actors::release::delta::apply_patch(&old, patch.as_slice(), &mut out, new.len() as u64)
        .map_err(|e| e.to_string())?;
    let apply = t.elapsed().as_secs_f64();
    if out != new {
        return Err("the patch did not rebuild the new executable".into());
    }
    let zfull = zstd::bulk::compress(&new, 19).map_err(|e| e.to_string())?;
    Ok((
        new.len() as u64,
        zfull.len() as u64,
        patch.len() as u64,
        make,
        apply,
    ))
}

fn med(v: &[f64]) -> f64 {
    median(v.to_vec()).unwrap_or(f64::NAN)
}

fn run(quick: bool, smoke: bool) -> Res<String> {
    let rounds = if quick { 1 } else { 3 };
    let size: u64 = if smoke {
        16 << 20
    } else if quick {
        64 << 20
    } else {
        1 << 30
    };
    let checkers = if smoke { 10 } else { 100 };
    let secs = if smoke {
        0.5
    } else if quick {
        2.0
    } else {
        5.0
    };
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let system = actix::System::new();
    let release_path = system.block_on(make_repo(tmp.path(), size as usize))?;
    let wanted = system.block_on(async {
        let repo = ReleaseRepo::open(&release_path)
            .await
            .map_err(|e| e.to_string())?;
        let info = repo.list().into_iter().next().ok_or("no release")?;
        let big = info
            .file_info
            .iter()
            .find(|f| f.path == "big.bin")
            .ok_or("no big.bin")?
            .clone();
        Ok::<_, String>(psvc_actors::update::download::Wanted {
            file: format!("{}.1.0.0/big.bin", big.sha256),
            length: big.length,
            sha256: big.sha256,
        })
    })?;
    let (ports, stop) = start_servers(release_path, size)?;

    let mut r1: [Vec<(f64, f64, f64)>; 3] = Default::default();
    let mut r2: [Vec<f64>; 3] = Default::default();
    let mut u1: Vec<f64> = Vec::new();
    let mut u1_base: Vec<f64> = Vec::new();
    let mut u1_disk: Vec<f64> = Vec::new();
    let cases: [(&str, &str); 3] = [
        ("/echo", "{}"),
        ("/release/latest", "{}"),
        ("/release/metadata/timestamp.json", ""),
    ];
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        system.block_on(async {
            for (i, (url, param)) in cases.iter().enumerate() {
                r1[i].push(checks(ports.psvc, checkers, secs, url, param).await?);
            }
            for (i, who) in ["raw", "tunnel", "releaser"].iter().enumerate() {
                r2[i].push(transfer(&ports, who, size).await?);
            }
            u1_base.push(transfer(&ports, "raw-sha", size).await?);
            u1_disk.push(raw_download(&ports, size, &tmp.path().join("downloads")).await?);
            u1.push(updater_download(&ports, &wanted, &tmp.path().join("downloads")).await?);
            Ok::<_, String>(())
        })?;
    }
    drop(stop);

    let flip_ms = flips(tmp.path(), if smoke { 6 } else { 50 })?;
    let mut r3_dir = Vec::new();
    let mut r3_cargo = Vec::new();
    let (files, each) = if smoke { (8, 1 << 20) } else { (64, 4 << 20) };
    for round in 0..rounds {
        r3_dir.push(build_dir(tmp.path(), files, each, round)?);
        if !smoke {
            r3_cargo.push(build_cargo(tmp.path(), round)?);
        }
    }

    let delta = if smoke {
        None
    } else {
        Some(delta_cargo(tmp.path())?)
    };

    let mut out = String::new();
    let _ = writeln!(out, "## Release pipeline (the Release pipeline issue)\n");
    let _ = writeln!(
        out,
        "`cargo bench -p psvc-benches --bench release`: {rounds} round(s), medians; {checkers} checkers × {secs} s per case; transfer {} MiB.\n",
        size >> 20
    );
    let _ = writeln!(
        out,
        "### R1 update check, {checkers} concurrent checkers (lower is better)\n"
    );
    let _ = writeln!(out, "| call | p50 µs | p99 µs | calls/s | p50 vs /echo |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let echo_p50 = med(&r1[0].iter().map(|x| x.0).collect::<Vec<_>>());
    for (i, (url, _)) in cases.iter().enumerate() {
        let p50 = med(&r1[i].iter().map(|x| x.0).collect::<Vec<_>>());
        let p99 = med(&r1[i].iter().map(|x| x.1).collect::<Vec<_>>());
        let rate = med(&r1[i].iter().map(|x| x.2).collect::<Vec<_>>());
        let _ = writeln!(
            out,
            "| `{url}` | {p50:.0} | {p99:.0} | {rate:.0} | {:.2}× |",
            p50 / echo_p50
        );
    }
    let _ = writeln!(out, "\n### R2 serving one target (higher is better)\n");
    let _ = writeln!(out, "| server | GB/s | vs raw tokio | vs psvc tunnel |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let raw = med(&r2[0]);
    let tunnel = med(&r2[1]);
    for (i, name) in [
        "raw tokio socket (memory)",
        "psvc tunnel `/stream/raw` (memory)",
        "Releaser `/release/file` (file)",
    ]
    .iter()
    .enumerate()
    {
        let v = med(&r2[i]);
        let _ = writeln!(
            out,
            "| {name} | {v:.2} | {:.2}× | {:.2}× |",
            v / raw,
            v / tunnel
        );
    }
    let u = med(&u1);
    let _ = writeln!(
        out,
        "\n### U1 Updater download + verify (higher is better)\n"
    );
    let ub = med(&u1_base);
    let ud = med(&u1_disk);
    let _ = writeln!(
        out,
        "| download | GB/s | vs raw + SHA-256 | vs raw + SHA-256 + disk |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| raw tokio socket + SHA-256 at the receiver (memory, no disk) | {ub:.2} | 1.00× | – |"
    );
    let _ = writeln!(
        out,
        "| raw tokio socket + SHA-256 + buffered write + fsync (same work, plain code) | {ud:.2} | {:.2}× | 1.00× |",
        ud / ub
    );
    let _ = writeln!(
        out,
        "| `update::download` from the Releaser: SHA-256 + write + fsync | {u:.2} | {:.2}× | {:.2}× |",
        u / ub,
        u / ud
    );
    let _ = writeln!(
        out,
        "\n### U2 `current` flip with fsync: median {flip_ms:.3} ms\n"
    );
    let _ = writeln!(out, "\n### R3 build overhead (lower is better)\n");
    let _ = writeln!(out, "| build | baseline s | psvc s | ratio |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let b = med(&r3_dir.iter().map(|x| x.0).collect::<Vec<_>>());
    let p = med(&r3_dir.iter().map(|x| x.1).collect::<Vec<_>>());
    let _ = writeln!(
        out,
        "| directory, {files} files × {} MiB: `cp -r` + `sha256sum` vs `build_release` | {b:.3} | {p:.3} | {:.2}× |",
        each >> 20,
        p / b
    );
    if !r3_cargo.is_empty() {
        let b = med(&r3_cargo.iter().map(|x| x.0).collect::<Vec<_>>());
        let p = med(&r3_cargo.iter().map(|x| x.1).collect::<Vec<_>>());
        let _ = writeln!(
            out,
            "| fixture crate, warm: `cargo build --release` vs `build_release` (overhead {:.0} ms) | {b:.3} | {p:.3} | {:.2}× |",
            (p - b) * 1000.0,
            p / b
        );
    }
    if let Some((full, zfull, patch, make, apply)) = delta {
        let _ = writeln!(
            out,
            "\n### D1 a one-line code change shipped as a patch (lower is better)\n"
        );
        let _ = writeln!(
            out,
            "| what is fetched | bytes | vs full file | vs zstd -19 of the full file |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| the new executable in full (fixture crate, release) | {full} | 100 % | – |"
        );
        let _ = writeln!(
            out,
            "| the same, zstd -19 | {zfull} | {:.1} % | 1.00× |",
            zfull as f64 * 100.0 / full as f64
        );
        let _ = writeln!(
            out,
            "| psvc patch (zstd patch-from, long window) | {patch} | {:.2} % | {:.3}× |",
            patch as f64 * 100.0 / full as f64,
            patch as f64 / zfull as f64
        );
        let _ = writeln!(
            out,
            "\nMaking the patch took {:.0} ms (once, at approval); applying it {:.1} ms.",
            make * 1000.0,
            apply * 1000.0
        );
    }
    Ok(out)
}

fn main() -> ExitCode {
    harness_main("release", "release.md", run)
}
