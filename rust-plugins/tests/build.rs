//! Builds the test guests from `rust-plugins/guests` with the host C
//! compiler, and records the addresses of the symbols the tests aim plugins
//! at (from `nm`).

use std::env;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

const USER_SYMBOLS: &[&str] = &["is_licensed", "compute", "show", "message"];

fn main() {
    let guests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let source = guests.join("user/targets.c");
    println!("cargo:rerun-if-changed={}", source.display());

    let targets = out.join("targets");
    run(Command::new("cc")
        .args(["-static", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&targets)
        .arg(&source));

    let mut rust = String::new();
    writeln!(rust, "/// The user-mode test guest.").unwrap();
    writeln!(
        rust,
        "pub const TARGETS: &str = {:?};",
        targets.display().to_string()
    )
    .unwrap();
    let symbols = symbols(&targets);
    for name in USER_SYMBOLS {
        let addr = symbols
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| fail(&format!("symbol {name} not found in {}", targets.display())));
        writeln!(rust, "/// Address of `{name}` in the user-mode test guest.").unwrap();
        writeln!(rust, "pub const {}: u64 = {addr:#x};", name.to_uppercase()).unwrap();
    }
    std::fs::write(out.join("guests.rs"), rust).unwrap();
}

fn symbols(binary: &Path) -> Vec<(String, u64)> {
    let output = run(Command::new("nm").arg(binary));
    output
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = u64::from_str_radix(fields.next()?, 16).ok()?;
            let _kind = fields.next()?;
            Some((fields.next()?.to_owned(), addr))
        })
        .collect()
}

fn run(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap_or_else(|e| {
        fail(&format!(
            "cannot run {cmd:?}: {e} (install build-essential)"
        ))
    });
    if !output.status.success() {
        fail(&format!(
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    exit(1)
}
