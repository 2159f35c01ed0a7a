//! `tracing` output through QEMU's log (`-d plugin`, `-D file`).

use std::io;

use tracing::Level;

/// Installs a `tracing` subscriber for this plugin that writes each event as
/// one line of QEMU's log, prefixed with the plugin's name.
pub(crate) fn init(level: Level) {
    // Fails only if a subscriber is already set (a plugin set its own).
    let _ = tracing_subscriber::fmt()
        .with_writer(|| QemuLog(Vec::new()))
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_max_level(level)
        .try_init();
}

/// Collects one formatted event and hands it to QEMU when dropped.
struct QemuLog(Vec<u8>);

impl io::Write for QemuLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for QemuLog {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let text = String::from_utf8_lossy(&self.0);
            crate::ffi::outs(&format!("{}: {text}", crate::plugin_name()));
        }
    }
}

/// Parses the `log=LEVEL` argument every plugin takes.
pub(crate) fn parse_level(value: &str) -> Result<Level, String> {
    value
        .parse()
        .map_err(|_| "expected error, warn, info, debug or trace".to_owned())
}
