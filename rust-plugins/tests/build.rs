//! Builds the test guests from `rust-plugins/guests` with the host C
//! compiler, and records the addresses of the symbols the tests aim plugins
//! at (from `nm`).

use std::env;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

/// Symbols both guests define, which the tests aim plugins at.
const SYMBOLS: &[&str] = &["is_licensed", "compute", "show", "message"];

fn main() {
    let guests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut rust = String::new();

    // User mode: a static Linux program.
    let source = guests.join("user/targets.c");
    let user = out.join("targets");
    run(Command::new("cc")
        .args(["-static", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&user)
        .arg(&source));
    describe(&mut rust, "USER", "user-mode test guest", &user, &[]);

    // User mode, two threads (lifecycle tests).
    let threads_source = guests.join("user/threads.c");
    let threads = out.join("threads");
    run(Command::new("cc")
        .args(["-static", "-pthread", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&threads)
        .arg(&threads_source));
    writeln!(rust, "/// The user-mode guest with two threads.").unwrap();
    writeln!(rust, "pub mod threads {{").unwrap();
    writeln!(rust, "    /// Path of the binary.").unwrap();
    writeln!(
        rust,
        "    pub const PATH: &str = {:?};",
        threads.display().to_string()
    )
    .unwrap();
    writeln!(rust, "}}").unwrap();

    // System mode: a bare-metal kernel booted through its PVH entry.
    let system = out.join("guest.elf");
    let dir = guests.join("system");
    run(Command::new("cc")
        .args([
            "-m64",
            "-O1",
            "-ffreestanding",
            "-fno-pic",
            "-no-pie",
            "-nostdlib",
            "-mno-red-zone",
            "-mgeneral-regs-only",
            "-fno-stack-protector",
            "-fcf-protection=none",
            "-Wall",
            "-Werror",
            "-Wl,--build-id=none",
            "-Wl,--no-warn-rwx-segments",
        ])
        .arg(format!("-Wl,-T,{}", dir.join("guest.ld").display()))
        .arg("-o")
        .arg(&system)
        .arg(dir.join("boot.S"))
        .arg(dir.join("guest.c")));
    describe(
        &mut rust,
        "SYSTEM",
        "bare-metal test guest",
        &system,
        &["syscall_dispatch"],
    );

    for file in [
        source,
        threads_source,
        dir.join("boot.S"),
        dir.join("guest.c"),
        dir.join("guest.ld"),
    ] {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    std::fs::write(out.join("guests.rs"), rust).unwrap();
}

/// Writes a module `prefix` (lower case) with the guest's path and the
/// addresses of its symbols.
fn describe(rust: &mut String, prefix: &str, what: &str, binary: &Path, extra: &[&str]) {
    let symbols = symbols(binary);
    writeln!(rust, "/// The {what}.").unwrap();
    writeln!(rust, "pub mod {} {{", prefix.to_lowercase()).unwrap();
    writeln!(rust, "    /// Path of the binary.").unwrap();
    writeln!(
        rust,
        "    pub const PATH: &str = {:?};",
        binary.display().to_string()
    )
    .unwrap();
    for name in SYMBOLS.iter().chain(extra) {
        let addr = symbols
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| fail(&format!("symbol {name} not found in {}", binary.display())));
        writeln!(rust, "    /// Address of `{name}`.").unwrap();
        writeln!(
            rust,
            "    pub const {}: u64 = {addr:#x};",
            name.to_uppercase()
        )
        .unwrap();
    }
    writeln!(rust, "}}").unwrap();
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
