//! The path sandbox on a real directory tree with real symbolic links:
//! links inside stay usable, links leading out are refused, and the rules
//! hold against the file system.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::fs::symlink;

use psvc::sandbox::{Sandbox, SandboxError};

/// root/ with files and links, and a secret beside it (outside).
struct Tree {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello").unwrap();
    std::fs::write(root.join("sub/deeper/data.bin"), b"data").unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    // Inside → inside: a file link, a relative directory link, and a link
    // that climbs but lands inside again.
    symlink("hello.txt", root.join("alias.txt")).unwrap();
    symlink("sub/deeper", root.join("shortcut")).unwrap();
    symlink("../hello.txt", root.join("sub/up.txt")).unwrap();
    // Inside → outside: absolute, relative climbing, a directory, a
    // dangling link to a file that does not exist out there.
    symlink(outside.join("secret"), root.join("abs-secret")).unwrap();
    symlink("../outside/secret", root.join("rel-secret")).unwrap();
    symlink(&outside, root.join("out-dir")).unwrap();
    symlink(outside.join("planted"), root.join("dangling")).unwrap();
    // The link to /etc a careless server would follow.
    symlink("/etc", root.join("etc")).unwrap();
    Tree {
        root,
        outside,
        _dir: dir,
    }
}

fn read(sandbox: &Sandbox, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    sandbox
        .open_read(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn links_that_stay_inside_work() {
    let t = tree();
    let sandbox = Sandbox::new(&t.root).unwrap();
    let root = std::fs::canonicalize(&t.root).unwrap();
    assert_eq!(sandbox.root(), root);

    assert_eq!(read(&sandbox, "hello.txt"), b"hello");
    assert_eq!(read(&sandbox, "alias.txt"), b"hello");
    assert_eq!(read(&sandbox, "sub/up.txt"), b"hello");
    assert_eq!(read(&sandbox, "shortcut/data.bin"), b"data");
    assert_eq!(read(&sandbox, "./sub//deeper/data.bin"), b"data");

    assert_eq!(
        sandbox.resolve("alias.txt").unwrap(),
        root.join("hello.txt")
    );
    assert_eq!(
        sandbox.resolve("shortcut/data.bin").unwrap(),
        root.join("sub/deeper/data.bin")
    );
    // Not there yet: the canonical ancestor plus the missing names.
    assert_eq!(
        sandbox.resolve("shortcut/new/file.txt").unwrap(),
        root.join("sub/deeper/new/file.txt")
    );
}

#[test]
fn links_that_lead_outside_are_refused() {
    let t = tree();
    let sandbox = Sandbox::new(&t.root).unwrap();
    for path in [
        "abs-secret",
        "rel-secret",
        "out-dir/secret",
        "out-dir/new-file",
        "dangling",
        "etc/passwd",
        "etc/hostname",
    ] {
        match sandbox.resolve(path) {
            Err(SandboxError::Escape(p)) => assert_eq!(p, path),
            other => panic!("resolve {path}: {other:?}"),
        }
        match sandbox.open_read(path) {
            Err(SandboxError::Escape(_)) => {}
            other => panic!("open_read {path}: {other:?}"),
        }
        match sandbox.create(path) {
            Err(SandboxError::Escape(_)) => {}
            other => panic!("create {path}: {other:?}"),
        }
    }
    // Nothing was written or truncated outside.
    assert_eq!(std::fs::read(t.outside.join("secret")).unwrap(), b"secret");
    assert!(!t.outside.join("planted").exists());
    assert!(!t.outside.join("new-file").exists());
}

#[test]
fn the_rules_hold_before_the_file_system_is_asked() {
    let t = tree();
    let sandbox = Sandbox::new(&t.root).unwrap();
    // `sub/../hello.txt` would land inside, and is refused all the same.
    for path in [
        "sub/../hello.txt",
        "../outside/secret",
        "sub/deeper/../../..",
    ] {
        assert!(
            matches!(sandbox.resolve(path), Err(SandboxError::ParentDir(_))),
            "{path}"
        );
        assert!(matches!(
            sandbox.open_read(path),
            Err(SandboxError::ParentDir(_))
        ));
    }
    let passwd = "/etc/passwd";
    assert!(matches!(
        sandbox.resolve(passwd),
        Err(SandboxError::Absolute(_))
    ));
    assert!(matches!(
        sandbox.open_read(passwd),
        Err(SandboxError::Absolute(_))
    ));
    let absolute_inside = t.root.join("hello.txt");
    assert!(matches!(
        sandbox.open_read(absolute_inside.to_str().unwrap()),
        Err(SandboxError::Absolute(_))
    ));
    assert!(matches!(
        sandbox.create("..\\outside\\x"),
        Err(SandboxError::Backslash(_))
    ));
    assert!(matches!(
        sandbox.create("hello.txt\0.png"),
        Err(SandboxError::Nul(_))
    ));
    assert!(matches!(sandbox.resolve(""), Err(SandboxError::Empty(_))));
    assert!(matches!(
        sandbox.open_read("."),
        Err(SandboxError::Empty(_))
    ));
    assert_eq!(std::fs::read(t.root.join("hello.txt")).unwrap(), b"hello");
}

#[test]
fn odd_names_are_names_and_nothing_more() {
    let t = tree();
    let sandbox = Sandbox::new(&t.root).unwrap();
    // Percent-encoding is not decoded: `%2e%2e` is a file name.
    for name in [
        "%2e%2e",
        "%2e%2e%2fetc%2fpasswd",
        "．．",
        "caf\u{e9}",
        "ab:c",
    ] {
        let mut f = sandbox.create(name).unwrap();
        f.write_all(name.as_bytes()).unwrap();
        drop(f);
        assert!(t.root.join(name).is_file(), "{name}");
        assert_eq!(read(&sandbox, name), name.as_bytes());
    }
    // NFC and NFD spellings are different names, as to the kernel.
    assert!(matches!(
        sandbox.open_read("cafe\u{301}"),
        Err(SandboxError::Io { .. })
    ));
    // Nothing appeared outside or at /etc.
    assert_eq!(std::fs::read_dir(&t.outside).unwrap().count(), 1);
}

#[test]
fn files_are_created_and_read_only_as_files() {
    let t = tree();
    let sandbox = Sandbox::new(&t.root).unwrap();
    let mut f = sandbox.create("sub/new.txt").unwrap();
    f.write_all(b"new").unwrap();
    drop(f);
    assert_eq!(std::fs::read(t.root.join("sub/new.txt")).unwrap(), b"new");
    // Through an inside link too.
    sandbox.create("shortcut/made.txt").unwrap();
    assert!(t.root.join("sub/deeper/made.txt").is_file());
    // A directory is not a file to read.
    assert!(matches!(
        sandbox.open_read("sub"),
        Err(SandboxError::NotAFile(_))
    ));
    // Missing directory, missing file: plain IO errors.
    assert!(matches!(
        sandbox.create("no-such-dir/x"),
        Err(SandboxError::Io { .. })
    ));
    match sandbox.open_read("missing.txt") {
        Err(SandboxError::Io { path, source }) => {
            assert_eq!(path, "missing.txt");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    // A file used as a directory.
    assert!(matches!(
        sandbox.resolve("hello.txt/x"),
        Err(SandboxError::Io { .. })
    ));
}

#[test]
fn a_root_that_is_missing_or_a_file_is_a_clear_error() {
    let t = tree();
    let missing = t.root.join("nope");
    match Sandbox::new(&missing) {
        Err(SandboxError::Root { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
    let file = t.root.join("hello.txt");
    assert!(matches!(
        Sandbox::new(&file),
        Err(SandboxError::RootNotDirectory(_))
    ));
    // A symlinked root is fine: it is canonicalized.
    let link = t.outside.join("root-link");
    symlink(&t.root, &link).unwrap();
    let sandbox = Sandbox::new(&link).unwrap();
    assert_eq!(sandbox.root(), std::fs::canonicalize(&t.root).unwrap());
    assert_eq!(read(&sandbox, "hello.txt"), b"hello");
}

#[test]
fn a_directory_replaced_by_an_outside_link_is_refused() {
    // A path that checked out once, then an attacker inside the root
    // replaces a directory with a link leading out. (The unit tests in
    // sandbox.rs open the swapped path with the check skipped, as a race
    // between check and open would.)
    let t = tree();
    let sandbox = Sandbox::new(&t.root).unwrap();
    std::fs::create_dir(t.root.join("box")).unwrap();
    std::fs::write(t.root.join("box/secret"), b"inside").unwrap();
    assert_eq!(read(&sandbox, "box/secret"), b"inside");
    std::fs::remove_dir_all(t.root.join("box")).unwrap();
    symlink(&t.outside, t.root.join("box")).unwrap();
    assert_eq!(
        std::fs::read(t.root.join("box/secret")).unwrap(),
        b"secret",
        "the link does lead out"
    );
    assert!(matches!(
        sandbox.open_read("box/secret"),
        Err(SandboxError::Escape(_))
    ));
}
