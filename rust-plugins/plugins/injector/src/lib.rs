//! Writes registers and memory when the guest reaches an address.
//!
//! `-plugin libinjector.so,pc=ADDR[,nth=N],reg=NAME:VALUE...,mem=VADDR:HEXBYTES...,pmem=HWADDR:HEXBYTES...`
//!
//! Before the instruction at `pc` executes, sets each register `NAME` to
//! `VALUE`, writes the bytes `HEXBYTES` at virtual address `VADDR`, and at
//! physical address `HWADDR` (system emulation): every time, or only the
//! `nth` time (from 1). Each injection is logged.

use std::sync::atomic::{AtomicU64, Ordering};

use qemu_xplugin::{Args, Error, Install, RegAccess, Result};

struct RegWrite {
    name: String,
    value: u64,
}

struct MemWrite {
    addr: u64,
    bytes: Vec<u8>,
}

fn parse_reg(arg: &str) -> Result<RegWrite> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| Error::new(format!("argument reg='{arg}': expected NAME:VALUE")))?;
    let value = <u64 as qemu_xplugin::FromArg>::from_arg(value)
        .map_err(|why| Error::new(format!("argument reg='{arg}': {why}")))?;
    Ok(RegWrite {
        name: name.to_owned(),
        value,
    })
}

fn parse_mem(key: &str, arg: &str) -> Result<MemWrite> {
    let bad = |why: &str| Error::new(format!("argument {key}='{arg}': {why}"));
    let (addr, hex) = arg
        .split_once(':')
        .ok_or_else(|| bad("expected ADDRESS:HEXBYTES"))?;
    let addr = <u64 as qemu_xplugin::FromArg>::from_arg(addr).map_err(|why| bad(&why))?;
    if hex.is_empty() || hex.len() % 2 != 0 {
        return Err(bad("expected an even number of hex digits"));
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| bad("expected hex digits"))?;
    Ok(MemWrite { addr, bytes })
}

/// Every `key=ADDRESS:HEXBYTES` argument.
fn take_mems(args: &mut Args, key: &str) -> Result<Vec<MemWrite>> {
    args.take_all::<String>(key)?
        .iter()
        .map(|a| parse_mem(key, a))
        .collect()
}

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let pc: u64 = args.require("pc")?;
    let nth: Option<u64> = args.take("nth")?;
    if nth == Some(0) {
        return Err("argument nth='0': executions are counted from 1".into());
    }
    let regs = args
        .take_all::<String>("reg")?
        .iter()
        .map(|a| parse_reg(a))
        .collect::<Result<Vec<_>>>()?;
    let mems = take_mems(args, "mem")?;
    let pmems = take_mems(args, "pmem")?;
    if regs.is_empty() && mems.is_empty() && pmems.is_empty() {
        return Err(
            "nothing to inject: give reg=NAME:VALUE, mem=VADDR:HEXBYTES or pmem=HWADDR:HEXBYTES"
                .into(),
        );
    }

    let executions = AtomicU64::new(0);
    let hook = plugin.exec_hook(RegAccess::ReadWrite, move |vcpu| {
        let n = executions.fetch_add(1, Ordering::Relaxed) + 1;
        if nth.is_some_and(|nth| nth != n) {
            return Ok(());
        }
        for reg in &regs {
            vcpu.write_register_u64(&reg.name, reg.value)?;
            tracing::info!("execution {n} of {pc:#x}: {} = {:#x}", reg.name, reg.value);
        }
        for mem in &mems {
            vcpu.write_memory(mem.addr, &mem.bytes)?;
            tracing::info!(
                "execution {n} of {pc:#x}: wrote {} bytes at {:#x}",
                mem.bytes.len(),
                mem.addr
            );
        }
        for mem in &pmems {
            vcpu.write_physical(mem.addr, &mem.bytes)?;
            tracing::info!(
                "execution {n} of {pc:#x}: wrote {} bytes at physical {:#x}",
                mem.bytes.len(),
                mem.addr
            );
        }
        Ok(())
    });
    plugin.on_translate(move |tb| {
        for insn in tb.insns().filter(|insn| insn.vaddr() == pc) {
            insn.on_exec(&hook);
        }
    });
    Ok(())
}

qemu_xplugin::plugin!(install);
