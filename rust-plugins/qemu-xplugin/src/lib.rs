//! Safe Rust SDK for QEMU TCG plugins, on the project's extended plugin API.
//!
//! A plugin is a `cdylib` crate that names its install function with
//! [`plugin!`]. The install function reads its arguments from [`Args`] and
//! registers closures on the [`Install`] context; QEMU calls them as the guest
//! runs, with a [`Vcpu`] through which they read and write registers and
//! memory and redirect the vCPU.
//!
//! ```no_run
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//! use qemu_xplugin::{Args, Install, RegAccess, Result};
//!
//! fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
//!     // `-plugin libexample.so,pc=0x401000`
//!     let pc: u64 = args.require("pc")?;
//!     let hits = Arc::new(AtomicU64::new(0));
//!     let counted = hits.clone();
//!     let hook = plugin.exec_hook(RegAccess::ReadWrite, move |vcpu| {
//!         counted.fetch_add(1, Ordering::Relaxed);
//!         vcpu.write_register_u64("rax", 42)?;
//!         Ok(())
//!     });
//!     plugin.on_translate(move |tb| {
//!         for insn in tb.insns() {
//!             if insn.vaddr() == pc {
//!                 insn.on_exec(&hook);
//!             }
//!         }
//!     });
//!     plugin.on_exit(move |_| {
//!         tracing::info!("pc {pc:#x} ran {} times", hits.load(Ordering::Relaxed));
//!     });
//!     Ok(())
//! }
//!
//! qemu_xplugin::plugin!(install);
//! ```
//!
//! Plugin authors write no `unsafe`: every call into QEMU is wrapped here.
//! A panic is reported (message and location, in QEMU's log and on standard
//! error) and ends QEMU with exit status 1 before any unwinding starts, so
//! it never unwinds into C.

mod args;
mod error;
mod ffi;
mod hooks;
mod install;
mod interplugin;
mod lifecycle;
mod link;
mod log;
mod mmio;
mod pervcpu;
mod registry;
mod regs;
mod scoreboard;
mod shared;
mod thread;
mod trampolines;
mod translate;
mod vcpu;

#[doc(hidden)]
pub mod __private;

pub use args::{Args, FromArg};
pub use error::{Error, ErrorKind, Result};
pub use ffi::outs;
pub use hooks::{ExecHook, Hwaddr, MemAccess, MemHook, MemRw};
pub use install::{
    AsidChange, Binary, Discontinuity, DiscontinuityKind, Hypercall, Install, PluginInfo, Syscall,
    TimeControl,
};
pub use interplugin::{Event, EventData, ExternFn, Subscription};
pub use lifecycle::{reset, uninstall};
pub use mmio::{MmioAccess, MmioAction};
pub use pervcpu::PerVcpu;
/// `#[derive(Pod)]`: see [`Pod`].
pub use qemu_xplugin_derive::Pod;
/// `#[derive(Shared)]`: see [`Shared`].
pub use qemu_xplugin_derive::Shared;
pub use regs::{Reg, RegValue};
pub use scoreboard::{Counter, Pod, Scoreboard};
pub use shared::{Flag, Shared};
pub use thread::{Context, ExecThread, QemuThread, VcpuExit};
pub use translate::{Cond, Insn, Tb};
pub use vcpu::{RegAccess, Vcpu};

/// The raw bindings, for what the SDK does not wrap yet (needs `unsafe`).
pub use qemu_xplugin_sys as sys;

/// The plugin API version plugins built with this SDK declare.
pub const API_VERSION: u32 = sys::QEMU_PLUGIN_VERSION;

/// The name QEMU gave this plugin, or `"plugin"` before it is installed.
pub fn plugin_name() -> &'static str {
    registry::plugin_name()
}

/// Declares a plugin: QEMU's entry points, calling `install` with the plugin
/// context and its arguments when QEMU loads the plugin.
///
/// ```ignore
/// qemu_xplugin::plugin!(install);
/// // or, with a name other than the file's and plugins to install first:
/// qemu_xplugin::plugin!(name = "hook", requires = ["syscalls"], install = install);
/// ```
///
/// `install` is a `fn(&mut Install, &mut Args) -> Result<()>`. An error it
/// returns, or an argument it left unread, stops QEMU with a message.
#[macro_export]
macro_rules! plugin {
    ($install:path) => {
        $crate::plugin!(@entry $install);
    };
    (name = $name:literal $(, requires = [$($req:literal),* $(,)?])?, install = $install:path $(,)?) => {
        $crate::plugin!(@entry $install);

        /// This plugin's name, read by QEMU.
        #[no_mangle]
        pub static qemu_plugin_name: [u8; $name.len() + 1] =
            $crate::__private::c_name::<{ $name.len() + 1 }>($name);

        $(
            /// The plugins QEMU installs before this one.
            #[no_mangle]
            pub static qemu_plugin_requires: [$crate::__private::CStrPtr;
                [$($req),*].len() + 1] = [
                $($crate::__private::CStrPtr::new(concat!($req, "\0")),)*
                $crate::__private::CStrPtr::NULL,
            ];
        )?
    };
    (@entry $install:path) => {
        /// The plugin API version this plugin was built for, read by QEMU.
        #[no_mangle]
        pub static qemu_plugin_version: ::std::ffi::c_int = $crate::API_VERSION as ::std::ffi::c_int;

        /// Called by QEMU when it loads the plugin.
        ///
        /// # Safety
        /// Only QEMU calls this, with the arguments its plugin API defines.
        #[no_mangle]
        pub unsafe extern "C" fn qemu_plugin_install(
            id: u64,
            info: *const $crate::sys::qemu_info_t,
            argc: ::std::ffi::c_int,
            argv: *mut *mut ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            // SAFETY: QEMU passes a valid info block and argc valid strings.
            unsafe { $crate::__private::install(id, info, argc, argv, $install) }
        }
    };
}

/// `docs/sdk.md`, whose example plugin compiles as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/sdk.md")]
pub struct SdkGuide;
