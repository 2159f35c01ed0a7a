//! One error type: a kind to match on, and a message that names what went
//! wrong.

use std::fmt;

/// What kind of error: for callers that act on it, not only print it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Linking: no loaded plugin has that name.
    NoPlugin,
    /// Linking: several loaded plugins have that name.
    Ambiguous,
    /// Linking: no such function, event or subscription.
    NotFound,
    /// Linking: the name is taken, or already subscribed.
    Exists,
    /// An argument QEMU or the SDK refused (a bad name, a NUL byte).
    Invalid,
    /// Two plugins disagree on the type of a function or event.
    TypeMismatch,
    /// Not allowed here: the callback's register access, the plugin's
    /// phase (install, exit), an operation under way.
    NotAllowed,
    /// A guest address that cannot be read, written or translated.
    Memory,
    /// The vCPU has no register of that name.
    UnknownRegister,
    /// A register's size differs from the value's (a write of 4 bytes to
    /// an 8-byte register, a `Reg<u32>` for an 8-byte register).
    RegisterSize,
    /// Not available in this emulation mode or QEMU (physical memory in
    /// user mode), or owned by another plugin (time control).
    Unsupported,
    /// A plugin argument that is missing, unknown or does not parse.
    Argument,
    /// Anything else (plugin arguments, errors made with [`Error::new`]).
    Other,
}

/// An error from the SDK or from QEMU: its [`ErrorKind`] and a message
/// that names the problem: the argument, register, address or plugin
/// concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this message, of kind [`ErrorKind::Other`].
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_kind(ErrorKind::Other, message)
    }

    /// An error of kind `kind` with this message.
    pub fn with_kind(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}
