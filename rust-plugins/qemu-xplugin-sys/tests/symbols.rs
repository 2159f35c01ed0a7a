//! The bindings cover exactly the API the patched QEMU exports.
//!
//! QEMU's build generates `plugins/qemu-plugin.symbols` (the symbols a plugin
//! may use) from the `QEMU_PLUGIN_API` markers in the header. Every one of
//! them needs a binding, and every bound function must be exported.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const BINDINGS: &str = include_str!(concat!(env!("OUT_DIR"), "/bindings.rs"));

fn symbols_file() -> PathBuf {
    match std::env::var_os("QEMU_BUILD") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/qemu-build"),
    }
    .join("plugins/qemu-plugin.symbols")
}

fn exported_symbols() -> BTreeSet<String> {
    let path = symbols_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); build the patched QEMU first (`make qemu`) or set QEMU_BUILD",
            path.display()
        )
    });
    text.lines()
        .map(|l| l.trim().trim_end_matches(';'))
        .filter(|l| l.starts_with("qemu_plugin_"))
        .map(str::to_owned)
        .collect()
}

fn bound_functions() -> BTreeSet<String> {
    BINDINGS
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub fn "))
        .filter_map(|rest| rest.split('(').next())
        .filter(|name| name.starts_with("qemu_plugin_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_exported_symbol_has_a_binding() {
    let exported = exported_symbols();
    assert!(
        exported.len() > 40,
        "suspiciously few symbols: {exported:?}"
    );
    let bound = bound_functions();
    let missing: Vec<_> = exported.difference(&bound).collect();
    assert!(
        missing.is_empty(),
        "exported by QEMU but not bound: {missing:?}"
    );
}

#[test]
fn every_binding_is_exported() {
    let exported = exported_symbols();
    let unexported: Vec<_> = bound_functions()
        .into_iter()
        .filter(|f| !exported.contains(f))
        .collect();
    assert!(
        unexported.is_empty(),
        "declared in qemu-plugin.h but missing from qemu-plugin.symbols: {unexported:?}"
    );
}

#[test]
fn api_version_stays_at_five() {
    // Version 6 is upstream 11.0's incompatible API; the series must not claim it.
    assert_eq!(qemu_xplugin_sys::API_VERSION, 5);
}

#[test]
fn inter_plugin_features_are_advertised() {
    use qemu_xplugin_sys as sys;
    assert_eq!(sys::QEMU_PLUGIN_HAS_PLUGIN_NAMES, 1);
    assert_eq!(sys::QEMU_PLUGIN_HAS_IMPORT_FUNCTION, 1);
    assert_eq!(sys::QEMU_PLUGIN_HAS_REQUIRES, 1);
    assert_eq!(sys::QEMU_PLUGIN_HAS_EVENTS, 1);
}

#[test]
fn backported_features_are_advertised() {
    use qemu_xplugin_sys as sys;
    assert_eq!(sys::QEMU_PLUGIN_HAS_SET_PC, 1);
    assert_eq!(sys::QEMU_PLUGIN_HAS_SYSCALL_FILTER, 1);
    assert_eq!(sys::qemu_plugin_cb_flags::QEMU_PLUGIN_CB_RW_REGS_PC.0, 3);
}

#[test]
fn the_asid_feature_is_advertised() {
    use qemu_xplugin_sys as sys;
    assert_eq!(sys::QEMU_PLUGIN_HAS_ASID, 1);
}

#[test]
fn hypercalls_are_advertised() {
    use qemu_xplugin_sys as sys;
    assert_eq!(sys::QEMU_PLUGIN_HAS_HYPERCALLS, 1);
}

#[test]
fn mmio_callbacks_are_advertised() {
    use qemu_xplugin_sys as sys;
    assert_eq!(sys::QEMU_PLUGIN_HAS_MMIO_CALLBACKS, 1);
    // The SDK's MmioAccess and MmioAction rest on these values.
    assert_eq!(sys::qemu_plugin_mmio_flags::QEMU_PLUGIN_MMIO_WRITE.0, 1);
    assert_eq!(
        sys::qemu_plugin_mmio_flags::QEMU_PLUGIN_MMIO_UNASSIGNED.0,
        2
    );
    assert_eq!(sys::qemu_plugin_mmio_result::QEMU_PLUGIN_MMIO_PASS.0, 0);
    assert_eq!(sys::qemu_plugin_mmio_result::QEMU_PLUGIN_MMIO_DONE.0, 1);
}
