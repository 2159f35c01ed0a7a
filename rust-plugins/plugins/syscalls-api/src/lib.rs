//! What the `syscalls` plugin offers other plugins (system emulation,
//! x86_64 Linux guests).
//!
//! It fires [`ENTER_EVENT`] with a [`SyscallEnter`] when a guest process
//! executes `syscall` or `int 0x80`, before the kernel sees it: subscribers
//! may change `args`, and the plugin writes changed arguments back to the
//! registers. It fires [`RETURN_EVENT`] with a [`SyscallReturn`] when the
//! syscall returns to the same thread: subscribers may change `ret`, which
//! the plugin writes to `rax`.

/// The provider's name.
pub const PLUGIN: &str = "syscalls";
/// Event fired on syscall entry, with a [`SyscallEnter`].
pub const ENTER_EVENT: &str = "enter";
/// Event fired on syscall return, with a [`SyscallReturn`].
pub const RETURN_EVENT: &str = "return";

/// Which process and thread made a syscall.
#[repr(C)]
#[derive(qemu_xplugin::Shared, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The vCPU it ran on.
    pub vcpu_index: u32,
    /// The address space: CR3 without its flag and PCID bits.
    pub asid: u64,
    /// The thread: its TLS base (`fs_base`).
    pub thread: u64,
    /// The process's name: the kernel's (`task_struct.comm`) when the
    /// `osi` plugin is loaded, else as the provider tracks it from
    /// `execve` (the basename of the program) and `fork`; `?` until known.
    pub comm: Comm,
    /// The process id (tgid) when `osi` is loaded, else -1.
    pub pid: i32,
    /// The thread id when `osi` is loaded, else -1.
    pub tid: i32,
}

impl Default for Caller {
    fn default() -> Self {
        Self {
            vcpu_index: 0,
            asid: 0,
            thread: 0,
            comm: Comm::default(),
            pid: -1,
            tid: -1,
        }
    }
}

/// Exported function: [`UsesOsiFn`].
pub const USES_OSI: &str = "syscalls_uses_osi";
/// `syscalls_uses_osi()`: 1 if the provider found `osi` when it was
/// installed (`osi` refuses to be installed after it).
pub type UsesOsiFn = extern "C" fn() -> u32;

/// A process name, NUL-padded like the kernel's `comm`.
#[repr(C)]
#[derive(qemu_xplugin::Shared, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Comm(pub [u8; 16]);

impl Comm {
    /// At most 15 bytes of `name`.
    pub fn new(name: &str) -> Self {
        let mut comm = [0u8; 16];
        let n = name.len().min(15);
        comm[..n].copy_from_slice(&name.as_bytes()[..n]);
        Self(comm)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(16);
        std::str::from_utf8(&self.0[..end]).unwrap_or("?")
    }
}

/// Data of [`ENTER_EVENT`].
#[repr(C)]
#[derive(qemu_xplugin::Shared, Clone, Copy, Debug)]
pub struct SyscallEnter {
    /// Who made the call.
    pub caller: Caller,
    /// Address of the `syscall` / `int 0x80` instruction.
    pub pc: u64,
    /// 32-bit `int 0x80` ABI (else 64-bit `syscall`).
    pub compat: qemu_xplugin::Flag,
    /// The syscall number.
    pub nr: u64,
    /// The arguments; a subscriber may change them.
    pub args: [u64; 6],
    /// For syscalls with a path argument (execve, open, openat, ...): the
    /// path, NUL-terminated, truncated to 255 bytes.
    pub path: [u8; 256],
    /// For `execve`: `argv[0]`, NUL-terminated, truncated to 63 bytes.
    pub argv0: [u8; 64],
}

fn c_text(bytes: &[u8]) -> Option<&str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    (end > 0).then(|| std::str::from_utf8(&bytes[..end]).unwrap_or("?"))
}

impl SyscallEnter {
    /// The path argument, if the syscall has one.
    pub fn path(&self) -> Option<&str> {
        c_text(&self.path)
    }

    /// `argv[0]` of an `execve`.
    pub fn argv0(&self) -> Option<&str> {
        c_text(&self.argv0)
    }
}

/// Data of [`RETURN_EVENT`].
#[repr(C)]
#[derive(qemu_xplugin::Shared, Clone, Copy, Debug)]
pub struct SyscallReturn {
    /// Who made the call.
    pub caller: Caller,
    /// 32-bit `int 0x80` ABI.
    pub compat: qemu_xplugin::Flag,
    /// The syscall number.
    pub nr: u64,
    /// The arguments as the kernel saw them.
    pub args: [u64; 6],
    /// The return value; a subscriber may change it.
    pub ret: i64,
    /// Address of the `syscall` / `int 0x80` instruction (as
    /// [`SyscallEnter::pc`]): with the thread, what matches a return to
    /// its entry when a signal handler's calls come in between.
    pub pc: u64,
}

/// x86_64 syscall numbers the plugins use by name.
pub mod nr {
    /// `getpid`
    pub const GETPID: u64 = 39;
    /// `clone`
    pub const CLONE: u64 = 56;
    /// `fork`
    pub const FORK: u64 = 57;
    /// `vfork`
    pub const VFORK: u64 = 58;
    /// `execve`
    pub const EXECVE: u64 = 59;
    /// `exit_group`
    pub const EXIT_GROUP: u64 = 231;
    /// `execveat`
    pub const EXECVEAT: u64 = 322;
    /// `clone3`
    pub const CLONE3: u64 = 435;
}

/// The name of x86_64 (64-bit ABI) syscall `nr`, for the common ones.
pub fn name(nr: u64) -> Option<&'static str> {
    Some(match nr {
        0 => "read",
        1 => "write",
        2 => "open",
        3 => "close",
        4 => "stat",
        5 => "fstat",
        6 => "lstat",
        7 => "poll",
        8 => "lseek",
        9 => "mmap",
        10 => "mprotect",
        11 => "munmap",
        12 => "brk",
        13 => "rt_sigaction",
        14 => "rt_sigprocmask",
        15 => "rt_sigreturn",
        16 => "ioctl",
        17 => "pread64",
        18 => "pwrite64",
        19 => "readv",
        20 => "writev",
        21 => "access",
        22 => "pipe",
        23 => "select",
        24 => "sched_yield",
        32 => "dup",
        33 => "dup2",
        35 => "nanosleep",
        39 => "getpid",
        40 => "sendfile",
        41 => "socket",
        42 => "connect",
        56 => "clone",
        57 => "fork",
        58 => "vfork",
        59 => "execve",
        60 => "exit",
        61 => "wait4",
        62 => "kill",
        63 => "uname",
        72 => "fcntl",
        74 => "fsync",
        76 => "truncate",
        77 => "ftruncate",
        78 => "getdents",
        79 => "getcwd",
        80 => "chdir",
        82 => "rename",
        83 => "mkdir",
        84 => "rmdir",
        87 => "unlink",
        88 => "symlink",
        89 => "readlink",
        90 => "chmod",
        92 => "chown",
        95 => "umask",
        96 => "gettimeofday",
        97 => "getrlimit",
        99 => "sysinfo",
        102 => "getuid",
        104 => "getgid",
        107 => "geteuid",
        108 => "getegid",
        109 => "setpgid",
        110 => "getppid",
        111 => "getpgrp",
        112 => "setsid",
        137 => "statfs",
        138 => "fstatfs",
        157 => "prctl",
        158 => "arch_prctl",
        161 => "chroot",
        162 => "sync",
        165 => "mount",
        166 => "umount2",
        169 => "reboot",
        186 => "gettid",
        202 => "futex",
        217 => "getdents64",
        218 => "set_tid_address",
        228 => "clock_gettime",
        231 => "exit_group",
        257 => "openat",
        258 => "mkdirat",
        262 => "newfstatat",
        263 => "unlinkat",
        264 => "renameat",
        267 => "readlinkat",
        268 => "fchmodat",
        269 => "faccessat",
        270 => "pselect6",
        271 => "ppoll",
        273 => "set_robust_list",
        280 => "utimensat",
        293 => "pipe2",
        302 => "prlimit64",
        318 => "getrandom",
        322 => "execveat",
        332 => "statx",
        334 => "rseq",
        435 => "clone3",
        439 => "faccessat2",
        _ => return None,
    })
}

/// The name of Linux errno `errno` (positive), for the common ones.
pub fn errno_name(errno: i64) -> Option<&'static str> {
    Some(match errno {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        9 => "EBADF",
        10 => "ECHILD",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        15 => "ENOTBLK",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        25 => "ENOTTY",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        29 => "ESPIPE",
        30 => "EROFS",
        31 => "EMLINK",
        32 => "EPIPE",
        33 => "EDOM",
        34 => "ERANGE",
        35 => "EDEADLK",
        36 => "ENAMETOOLONG",
        37 => "ENOLCK",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        40 => "ELOOP",
        61 => "ENODATA",
        62 => "ETIME",
        75 => "EOVERFLOW",
        95 => "EOPNOTSUPP",
        110 => "ETIMEDOUT",
        512 => "ERESTARTSYS",
        513 => "ERESTARTNOINTR",
        514 => "ERESTARTNOHAND",
        516 => "ERESTART_RESTARTBLOCK",
        _ => return None,
    })
}

/// Whether the first argument of syscall `nr` is a path.
pub fn first_arg_is_path(nr: u64) -> bool {
    matches!(
        nr,
        2 | 4 | 6 | 21 | 59 | 76 | 80 | 83 | 84 | 87 | 88 | 89 | 90 | 92 | 137 | 161
    )
}

/// Whether the second argument of syscall `nr` is a path (`*at` calls).
pub fn second_arg_is_path(nr: u64) -> bool {
    matches!(
        nr,
        257 | 258 | 262 | 263 | 267 | 268 | 269 | 280 | 322 | 332 | 439
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_truncates_and_reads_back() {
        assert_eq!(Comm::new("sh").as_str(), "sh");
        assert_eq!(
            Comm::new("a-very-long-program-name").as_str(),
            "a-very-long-pro"
        );
        assert_eq!(Comm::default().as_str(), "");
    }

    #[test]
    fn names_of_common_syscalls() {
        assert_eq!(name(nr::EXECVE), Some("execve"));
        assert_eq!(name(nr::GETPID), Some("getpid"));
        assert_eq!(name(100_000), None);
        assert!(first_arg_is_path(nr::EXECVE));
        assert!(second_arg_is_path(257));
        assert_eq!(errno_name(2), Some("ENOENT"));
        assert_eq!(errno_name(100_000), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Event data from another plugin (or a guest's memory) decodes
            /// to text or nothing, never a panic, and never past a NUL.
            #[test]
            fn decoding_event_data(
                path in proptest::collection::vec(any::<u8>(), 256),
                argv0 in proptest::collection::vec(any::<u8>(), 64),
                comm in proptest::collection::vec(any::<u8>(), 16),
            ) {
                let enter = SyscallEnter {
                    caller: Caller { comm: Comm(comm.try_into().unwrap()), ..Caller::default() },
                    pc: 0,
                    compat: qemu_xplugin::Flag::new(false),
                    nr: 0,
                    args: [0; 6],
                    path: path.clone().try_into().unwrap(),
                    argv0: argv0.try_into().unwrap(),
                };
                for text in [enter.path(), enter.argv0(), Some(enter.caller.comm.as_str())]
                    .into_iter()
                    .flatten()
                {
                    prop_assert!(!text.contains('\0'));
                }
                match path.iter().position(|&b| b == 0) {
                    Some(0) => prop_assert_eq!(enter.path(), None),
                    _ => prop_assert!(enter.path().is_some()),
                }
            }
        }
    }
}
