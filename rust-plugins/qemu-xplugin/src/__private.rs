//! What [`crate::plugin!`] expands to needs; not part of the API.

use std::ffi::{c_char, c_int};

use qemu_xplugin_sys as sys;

use crate::ffi;
use crate::install::PluginInfo;
use crate::registry::set_plugin;
use crate::{Args, Install, Result};

/// `qemu_plugin_name`: the name as a NUL-terminated byte array.
pub const fn c_name<const N: usize>(name: &str) -> [u8; N] {
    let bytes = name.as_bytes();
    assert!(bytes.len() + 1 == N, "N is the name's length plus one");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i] != 0, "a plugin name cannot contain NUL");
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// An entry of `qemu_plugin_requires`: a pointer to a static C string.
#[repr(transparent)]
pub struct CStrPtr(*const c_char);

// SAFETY: points to immutable static data.
unsafe impl Sync for CStrPtr {}

impl CStrPtr {
    /// The terminating NULL.
    pub const NULL: Self = Self(std::ptr::null());

    /// `s` must end with a NUL byte.
    pub const fn new(s: &'static str) -> Self {
        let bytes = s.as_bytes();
        assert!(
            !bytes.is_empty() && bytes[bytes.len() - 1] == 0,
            "requires entries are NUL-terminated"
        );
        Self(bytes.as_ptr().cast())
    }
}

/// `qemu_plugin_install` of a plugin declared with [`crate::plugin!`].
///
/// # Safety
/// The arguments are those QEMU passes to `qemu_plugin_install`.
pub unsafe fn install(
    id: u64,
    info: *const sys::qemu_info_t,
    argc: c_int,
    argv: *mut *mut c_char,
    install: fn(&mut Install, &mut Args) -> Result<()>,
) -> c_int {
    // SAFETY: QEMU passes argc valid strings and a valid info block, and the
    // plugin's name is valid while it is loaded.
    let (name, info, raw_args) = unsafe {
        let info = &*info;
        let system = info.system_emulation;
        let args: Vec<String> = (0..argc.max(0) as usize)
            .filter_map(|i| ffi::copy_c_str(*argv.add(i)))
            .collect();
        let name = ffi::copy_c_str(sys::qemu_plugin_get_name(id)).unwrap_or_default();
        let info = PluginInfo {
            target: ffi::copy_c_str(info.target_name).unwrap_or_default(),
            system_emulation: system,
            smp_vcpus: if system {
                info.__bindgen_anon_1.system.smp_vcpus.max(0) as u32
            } else {
                1
            },
            max_vcpus: if system {
                info.__bindgen_anon_1.system.max_vcpus.max(0) as u32
            } else {
                1
            },
        };
        (name, info, args)
    };
    if let Err(err) = set_plugin(id, name, info) {
        // Another install of this very library is running the plugin: say
        // so and touch nothing of its state.
        eprintln!("{err}");
        ffi::outs(&format!("{err}\n"));
        return 1;
    }

    ffi::install_panic_hook();
    crate::lifecycle::pin_library();
    let result = (|| -> Result<()> {
        let mut args = Args::parse(&raw_args)?;
        let level = args
            .take::<String>("log")?
            .map(|l| {
                crate::log::parse_level(&l).map_err(|why| format!("argument log='{l}': {why}"))
            })
            .transpose()?
            .unwrap_or(tracing::Level::INFO);
        crate::log::init(level);
        crate::trampolines::ensure_vcpu_init();
        install(&mut Install::new(), &mut args)?;
        args.finish()
    })();
    crate::lifecycle::set_phase(crate::lifecycle::Phase::Running);
    match result {
        Ok(()) => 0,
        Err(err) => {
            // QEMU prints that the plugin failed to install; say why first.
            eprintln!("{}: {err}", crate::plugin_name());
            ffi::outs(&format!("{}: {err}\n", crate::plugin_name()));
            1
        }
    }
}

/// For `#[derive(Shared)]`.
pub fn describe_struct<T>(
    name: &str,
    krate: &str,
    version: &str,
    fields: &[(&str, String, usize)],
) -> String {
    crate::shared::describe_struct::<T>(name, krate, version, fields)
}
