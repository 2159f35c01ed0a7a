//! Runs the patched QEMU with the project's plugins and test guests.
//!
//! The QEMU binaries come from `$QEMU_USER` / `$QEMU_SYSTEM` (the Makefile
//! sets them) or from `build/qemu-build`; the plugins from the workspace's
//! `target/debug` (`cargo build --workspace` first, as `make check-rust`
//! does).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The test guests and the addresses of their symbols.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn existing(path: PathBuf, how: &str) -> PathBuf {
    assert!(path.exists(), "{} does not exist: {how}", path.display());
    path
}

/// `qemu-x86_64` of the patched build.
pub fn qemu_user() -> PathBuf {
    let path = std::env::var_os("QEMU_USER")
        .map(PathBuf::from)
        .unwrap_or_else(|| top().join("build/qemu-build/qemu-x86_64"));
    existing(
        path,
        "build the patched QEMU with `make` (or set QEMU_USER)",
    )
}

/// The library of plugin crate `name` (`-` becomes `_`).
pub fn plugin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| top().join("target"));
    let file = format!("lib{}.so", name.replace('-', "_"));
    existing(
        target.join("debug").join(file),
        "build the plugins with `cargo build --workspace` first",
    )
}

/// What a QEMU run left behind.
#[derive(Debug)]
pub struct Run {
    /// Exit status code (None: killed by a signal).
    pub code: Option<i32>,
    /// The guest's standard output.
    pub stdout: String,
    /// QEMU's and the guest's standard error.
    pub stderr: String,
    /// QEMU's log: what the plugins wrote.
    pub log: String,
}

impl Run {
    /// Panics, showing everything, unless `stdout` has line `line`.
    pub fn assert_stdout_line(&self, line: &str) -> &Self {
        assert!(
            self.stdout.lines().any(|l| l == line),
            "guest output has no line {line:?}:\n{self:#?}"
        );
        self
    }

    /// Panics unless the plugin log contains `text`.
    pub fn assert_log_contains(&self, text: &str) -> &Self {
        assert!(
            self.log.contains(text),
            "plugin log lacks {text:?}:\n{self:#?}"
        );
        self
    }

    /// Panics unless QEMU exited with `code`.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit status:\n{self:#?}");
        self
    }
}

/// Runs `guest` under `qemu-x86_64` with `plugins`, each `"crate"` or
/// `"crate,key=value,..."`.
pub fn run_user(plugins: &[&str], guest: &str) -> Run {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let log = std::env::temp_dir().join(format!(
        "xplugin-test-{}-{}.log",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let mut cmd = Command::new(qemu_user());
    for spec in plugins {
        let (name, args) = spec.split_once(',').unwrap_or((spec, ""));
        let mut arg = plugin(name).into_os_string();
        if !args.is_empty() {
            arg.push(",");
            arg.push(args);
        }
        cmd.arg("-plugin").arg(arg);
    }
    cmd.args(["-d", "plugin", "-D"]).arg(&log).arg(guest);
    let output = cmd.output().expect("QEMU starts");
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        log: std::fs::read_to_string(&log).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(&log);
    run
}
