//! Generates Rust bindings for the patched `qemu-plugin.h`.
//!
//! The header is taken from the QEMU source tree that the top-level Makefile
//! prepares (`build/qemu-src`), or from `$QEMU_SRC` when that is set.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

fn main() {
    let header = header_path();
    println!("cargo:rerun-if-env-changed=QEMU_SRC");
    println!("cargo:rerun-if-changed={}", header.display());
    if !header.is_file() {
        fail(&format!(
            "QEMU plugin header not found at {}.\n\
             Run `make qemu-src` at the top of the project to prepare the patched QEMU source, \
             or point QEMU_SRC at a prepared QEMU source tree.",
            header.display()
        ));
    }

    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .clang_args(glib_cflags())
        .allowlist_function("qemu_plugin_.*")
        // The glib calls needed to create and free what the API passes in
        // and out (GByteArray buffers, GArray register lists, strings).
        .allowlist_function(
            "g_byte_array_new|g_byte_array_append|g_byte_array_set_size|g_byte_array_free|g_array_free|g_free",
        )
        .allowlist_type("qemu_plugin_.*|qemu_info_t")
        .allowlist_var("QEMU_PLUGIN_.*")
        // Defined by each plugin, not by QEMU: the SDK's macro provides them.
        .blocklist_item("qemu_plugin_version")
        .blocklist_function("qemu_plugin_install")
        // Newtype enums: a value QEMU adds later is not undefined behaviour.
        .default_enum_style(bindgen::EnumVariation::NewType {
            is_bitfield: false,
            is_global: false,
        })
        .bitfield_enum("qemu_plugin_mem_rw")
        .derive_default(true)
        .prepend_enum_name(false)
        // qemu_plugin_set_pc() is __attribute__((noreturn)): make it `-> !`.
        .enable_function_attribute_detection()
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen failed on {}: {e}", header.display())));

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write bindings: {e}")));

    // Feature macros (`#define QEMU_PLUGIN_HAS_<NAME> 1`) advertise what the
    // patch series adds. Publish them to dependents (DEP_QEMU_PLUGIN_FEATURES)
    // and to this crate's tests.
    let features = feature_macros(&header);
    println!("cargo:features={}", features.join(","));
    println!("cargo:header={}", header.display());
}

fn header_path() -> PathBuf {
    let src = match env::var_os("QEMU_SRC") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/qemu-src"),
    };
    src.join("include/qemu/qemu-plugin.h")
}

fn glib_cflags() -> Vec<String> {
    let output = Command::new("pkg-config")
        .args(["--cflags", "glib-2.0"])
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run pkg-config: {e} (install pkg-config)")));
    if !output.status.success() {
        fail("pkg-config found no glib-2.0 (install libglib2.0-dev: `make deps`)");
    }
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn feature_macros(header: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(header)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", header.display())));
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("#define QEMU_PLUGIN_HAS_"))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|name| name.to_ascii_lowercase())
        .collect()
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    exit(1)
}
