//! What the `blocks` plugin offers other plugins.
//!
//! Plugin `blocks` fires event [`BLOCK_EVENT`] with a [`BlockExec`] every
//! time a translation block executes, and exports [`FIRED`], a
//! [`FiredFn`] returning how many it has fired.

/// The plugin's name.
pub const PLUGIN: &str = "blocks";

/// Name of the event fired for each executed block.
pub const BLOCK_EVENT: &str = "block_exec";

/// Name of the exported function counting fired events.
pub const FIRED: &str = "blocks_fired";

/// Type of [`FIRED`].
pub type FiredFn = extern "C" fn() -> u64;

/// The data of [`BLOCK_EVENT`]. A subscriber may set `flag`, which the
/// provider counts: how subscribers answer.
#[repr(C)]
#[derive(qemu_xplugin::Shared, Clone, Copy, Debug, Default)]
pub struct BlockExec {
    /// The vCPU that executes the block.
    pub vcpu_index: u32,
    /// Number of instructions in the block.
    pub insns: u32,
    /// Address of the block.
    pub pc: u64,
    /// Set by a subscriber to flag the block.
    pub flag: qemu_xplugin::Flag,
}
