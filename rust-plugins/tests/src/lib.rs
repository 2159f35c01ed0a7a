//! Runs the patched QEMU with the project's plugins and test guests.
//!
//! The QEMU binaries come from `$QEMU_USER` / `$QEMU_SYSTEM` (the Makefile
//! sets them) or from `build/qemu-build`; the plugins from the workspace's
//! `target/debug` (`cargo build --workspace` first, as `make check-rust`
//! does).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The test guests and the addresses of their symbols.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// A run that takes longer is killed and fails its test.
const TIMEOUT: Duration = Duration::from_secs(120);

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn existing(path: PathBuf, how: &str) -> PathBuf {
    assert!(path.exists(), "{} does not exist: {how}", path.display());
    path
}

fn qemu(var: &str, file: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| top().join("build/qemu-build").join(file));
    existing(
        path,
        &format!("build the patched QEMU with `make` (or set {var})"),
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

/// A file for QEMU to write, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(what: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        Self(std::env::temp_dir().join(format!(
            "xplugin-test-{}-{}.{what}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )))
    }

    fn read(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a QEMU run left behind.
#[derive(Debug)]
pub struct Run {
    /// Exit status code (None: killed by a signal).
    pub code: Option<i32>,
    /// What the guest printed (stdout, or the debug console).
    pub stdout: String,
    /// QEMU's standard error.
    pub stderr: String,
    /// QEMU's log: what the plugins wrote.
    pub log: String,
}

impl Run {
    /// Panics, showing everything, unless the guest printed line `line`.
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

    /// Panics unless QEMU's standard error contains `text`.
    pub fn assert_stderr_contains(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{self:#?}"
        );
        self
    }

    /// Panics unless QEMU exited with `code`.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit status:\n{self:#?}");
        self
    }

    /// The numbers in the first log line that starts with `prefix`.
    pub fn log_numbers(&self, prefix: &str) -> Vec<u64> {
        let line = self
            .log
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no log line starts with {prefix:?}:\n{self:#?}"));
        line.split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect()
    }

    /// The sums of asid-timeline's rows (address spaces, and the others
    /// summed) for the vCPU whose lines start with `prefix`: its clock
    /// and slices. A row is "0x<asid> <clock> <share>% <slices> |...|" or
    /// "(<n> others) <clock> <share>% <slices>".
    pub fn asid_timeline_rows(&self, prefix: &str) -> (u64, u64) {
        let (mut ran, mut slices) = (0, 0);
        for row in self.log.lines().filter_map(|l| l.strip_prefix(prefix)) {
            let words: Vec<&str> = row.split_whitespace().collect();
            let first = match words.first() {
                Some(w) if w.starts_with("0x") => 1,
                Some(w) if w.starts_with('(') => 2,
                _ => continue,
            };
            ran += words[first].parse::<u64>().unwrap();
            slices += words[first + 2].parse::<u64>().unwrap();
        }
        (ran, slices)
    }
}

/// Where [`Qemu::linux`] finds the guest (`$LINUX_GUEST_DIR` or
/// `build/linux`).
fn linux_guest_dir() -> PathBuf {
    std::env::var_os("LINUX_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| top().join("build/linux"))
}

/// A QEMU command line under construction.
pub struct Qemu {
    cmd: Command,
    guest_output: Option<TempFile>,
    plugins: Vec<OsString>,
}

impl Qemu {
    /// `qemu-x86_64` running `program`.
    pub fn user(program: &str) -> Self {
        let mut cmd = Command::new(qemu("QEMU_USER", "qemu-x86_64"));
        cmd.arg(program);
        Self {
            cmd,
            guest_output: None,
            plugins: Vec::new(),
        }
    }

    /// `qemu-system-x86_64` booting bare-metal `kernel` with `vcpus` vCPUs;
    /// the guest prints on the debug console and exits through
    /// isa-debug-exit (status 2 * value + 1).
    pub fn system(kernel: &str, vcpus: u32) -> Self {
        let output = TempFile::new("out");
        let mut cmd = Command::new(qemu("QEMU_SYSTEM", "qemu-system-x86_64"));
        cmd.args(["-nodefaults", "-display", "none", "-no-reboot"])
            .args(["-smp", &vcpus.to_string()])
            .args(["-kernel", kernel])
            .arg("-chardev")
            .arg(format!("file,id=out,path={}", output.0.display()))
            .args(["-device", "isa-debugcon,chardev=out"])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        Self {
            cmd,
            guest_output: Some(output),
            plugins: Vec::new(),
        }
    }

    /// The kernel image of the Linux test guest (`vmlinuz`, a bzImage), as
    /// [`Qemu::linux`] boots it.
    pub fn linux_kernel() -> PathBuf {
        linux_guest_dir().join("vmlinuz")
    }

    /// `qemu-system-x86_64` booting the Linux test guest (Debian's kernel,
    /// a busybox initramfs running `rust-plugins/guests/linux/init`); the
    /// serial console is the guest's output.
    pub fn linux(vcpus: u32) -> Self {
        Self::linux_with(vcpus, None, "", None)
    }

    /// [`Qemu::linux`] with CPU model `cpu` (`-cpu`; QEMU's default when
    /// None), `cmdline` appended to the kernel's command line, and the
    /// initramfs at `initrd` (None: the guest's `initramfs.gz`).
    pub fn linux_with(vcpus: u32, cpu: Option<&str>, cmdline: &str, initrd: Option<&Path>) -> Self {
        let dir = std::env::var_os("LINUX_GUEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| top().join("build/linux"));
        let how = "build the Linux guest with `make linux-guest` (or set LINUX_GUEST_DIR)";
        let kernel = existing(dir.join("vmlinuz"), how);
        let initrd = match initrd {
            Some(path) => path.to_owned(),
            None => existing(dir.join("initramfs.gz"), how),
        };
        let output = TempFile::new("serial");
        let mut cmd = Command::new(qemu("QEMU_SYSTEM", "qemu-system-x86_64"));
        cmd.args(["-nodefaults", "-display", "none", "-no-reboot", "-m", "256"])
            .args(["-smp", &vcpus.to_string()])
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .args([
                "-append",
                &format!("console=ttyS0 quiet panic=-1 {cmdline}"),
            ])
            .args(cpu.map(|cpu| ["-cpu", cpu]).into_iter().flatten())
            .arg("-serial")
            .arg(format!("file:{}", output.0.display()));
        Self {
            cmd,
            guest_output: Some(output),
            plugins: Vec::new(),
        }
    }

    /// Loads plugin crate `spec`: `"crate"` or `"crate,key=value,..."`.
    pub fn plugin(mut self, spec: &str) -> Self {
        let (name, args) = spec.split_once(',').unwrap_or((spec, ""));
        let mut arg = plugin(name).into_os_string();
        if !args.is_empty() {
            arg.push(",");
            arg.push(args);
        }
        self.plugins.push(arg);
        self
    }

    /// Loads the plugin library at `path` with arguments `args` (may be
    /// empty).
    pub fn plugin_path(mut self, path: &Path, args: &str) -> Self {
        let mut arg = path.as_os_str().to_owned();
        if !args.is_empty() {
            arg.push(",");
            arg.push(args);
        }
        self.plugins.push(arg);
        self
    }

    /// Loads a second copy of the injector (plugins need distinct names),
    /// with arguments `args`.
    pub fn plugin_copy_of_injector(self, args: &str) -> Self {
        self.plugin_copy("injector", args)
    }

    /// Loads a second copy of plugin crate `name` (plugins need distinct
    /// names), with arguments `args` (may be empty).
    pub fn plugin_copy(self, name: &str, args: &str) -> Self {
        let copy = std::env::temp_dir().join(format!(
            "xplugin-test-{}/lib{}_copy.so",
            std::process::id(),
            name.replace('-', "_")
        ));
        std::fs::create_dir_all(copy.parent().expect("has a parent")).expect("temp dir");
        std::fs::copy(plugin(name), &copy).expect("copy the plugin");
        self.plugin_path(&copy, args)
    }

    /// Runs QEMU to its end (or the timeout).
    pub fn run(mut self) -> Run {
        let log = TempFile::new("log");
        // Options go before the user-mode program: put them first.
        let mut cmd = Command::new(self.cmd.get_program());
        for plugin in &self.plugins {
            cmd.arg("-plugin").arg(plugin);
        }
        cmd.args(["-d", "plugin", "-D"]).arg(&log.0);
        cmd.args(self.cmd.get_args());
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("QEMU starts");
        let start = Instant::now();
        while child.try_wait().expect("wait for QEMU").is_none() {
            if start.elapsed() > TIMEOUT {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().expect("QEMU's output");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        Run {
            code: output.status.code(),
            stdout: match self.guest_output.take() {
                Some(file) => file.read(),
                None => stdout,
            },
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            log: log.read(),
        }
    }
}

/// Runs user-mode `guest` with `plugins` (see [`Qemu::plugin`]).
pub fn run_user(plugins: &[&str], guest: &str) -> Run {
    plugins
        .iter()
        .fold(Qemu::user(guest), |qemu, spec| qemu.plugin(spec))
        .run()
}
