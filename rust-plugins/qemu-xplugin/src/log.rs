//! `tracing` output through QEMU's log (`-d plugin`, `-D file`).

use std::fmt;
use std::io;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs a `tracing` subscriber for this plugin that writes each event as
/// one line of QEMU's log: `plugin: LEVEL message key=value`.
pub(crate) fn init(level: Level) {
    // Fails only if a subscriber is already set (a plugin set its own).
    let _ = tracing_subscriber::fmt()
        .with_writer(|| QemuLog(Vec::new()))
        .with_ansi(false)
        .with_max_level(level)
        .event_format(Line)
        .try_init();
}

/// The line format.
struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(
            writer,
            "{}: {} ",
            crate::plugin_name(),
            event.metadata().level()
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
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
            crate::ffi::outs(&String::from_utf8_lossy(&self.0));
        }
    }
}

/// Parses the `log=LEVEL` argument every plugin takes.
pub(crate) fn parse_level(value: &str) -> Result<Level, String> {
    value
        .parse()
        .map_err(|_| "expected error, warn, info, debug or trace".to_owned())
}
