//! Raw FFI bindings to the extended QEMU TCG plugin API.
//!
//! Generated at build time by `bindgen` from the *patched* `qemu-plugin.h`
//! (see the project's `patches/`), so every API the series adds is here.
//! Nothing here is safe to use directly: plugin authors use the
//! `qemu-xplugin` SDK crate, which wraps these bindings.
//!
//! No library is linked: the `qemu_plugin_*` functions are resolved when
//! QEMU loads the plugin, against the QEMU binary itself.

#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]
#![allow(missing_docs, clippy::all, clippy::undocumented_unsafe_blocks)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// The plugin API version of the header these bindings were generated from.
///
/// The series keeps this at 5 (upstream 10.2); additions are advertised by
/// `QEMU_PLUGIN_HAS_*` feature macros instead.
pub const API_VERSION: u32 = QEMU_PLUGIN_VERSION;
