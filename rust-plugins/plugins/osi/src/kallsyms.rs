//! The kernel's own symbol table, kallsyms, found in the `.rodata` of a
//! `vmlinux` that has no `.symtab` (the one inside a bzImage is stripped).
//! `osi` needs the link-time addresses of two static variables that BTF
//! does not describe: `init_task` (whose run-time address, the pid-0 entry
//! of the task list, gives the KASLR slide) and `modules` (the list head
//! of the loaded modules).
//!
//! The tables (`scripts/kallsyms.c`), all in `.rodata`:
//! `kallsyms_offsets` (i32 per symbol), `kallsyms_relative_base` (u64),
//! `kallsyms_num_syms` (u32), `kallsyms_names` (per symbol: a length, one
//! byte or two (ULEB128, 6.1+), then that many token numbers; the first
//! character of the expansion is the type), `kallsyms_markers` (u32 per
//! 256 symbols: offset of that symbol's entry in the names),
//! [`kallsyms_seqs_of_names` (3 bytes per symbol, 6.2+ and some 6.1.y)],
//! `kallsyms_token_table` (256 NUL-terminated tokens) and
//! `kallsyms_token_index` (u16 per token: its offset in the table). Newer
//! kernels move the offsets and the base after the token index. Nothing
//! points at them: they are found by their shape, as `vmlinux-to-elf`
//! does, and every step is checked (the markers against the names, the
//! result against BTF's offset of `current_task`).

/// Link-time addresses of the symbols `osi` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbols {
    /// `init_task`
    pub init_task: u64,
    /// `modules` (a `list_head`)
    pub modules: u64,
    /// `current_task` (a per-CPU variable: its offset in `.data..percpu`),
    /// when the kernel has that symbol (a check of the tables' reading).
    pub current_task: Option<u64>,
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

/// The token table at `start` (256 NUL-terminated tokens of at most 64
/// bytes) if the token index follows it (at the next 2-, 4- or
/// 8-byte boundary): the tokens and the end of the index.
fn tokens_at(d: &[u8], start: usize) -> Option<(Vec<&[u8]>, usize)> {
    let mut tokens = Vec::with_capacity(256);
    let mut p = start;
    for _ in 0..256 {
        let len = d.get(p..p + 65)?.iter().position(|&b| b == 0)?;
        tokens.push(&d[p..p + len]);
        p += len + 1;
    }
    for align in [2, 4, 8] {
        let index = p.next_multiple_of(align);
        let mut offset = 0usize;
        let ok = tokens.iter().enumerate().all(|(i, t)| {
            let good = u16_at(d, index + 2 * i) == u16::try_from(offset).ok();
            offset += t.len() + 1;
            good
        });
        if ok {
            return Some((tokens, index + 512));
        }
    }
    None
}

/// The token table: the tokens of the digits are single characters at
/// their own numbers, so "0\01\0...9\0" is in it, preceded by 48 tokens.
fn token_table(d: &[u8]) -> Option<(usize, Vec<&[u8]>, usize)> {
    let digits: Vec<u8> = (b'0'..=b'9').flat_map(|c| [c, 0]).collect();
    let mut from = 0;
    while let Some(i) = find(&d[from..], &digits).map(|i| i + from) {
        // Walk back 48 tokens.
        let mut start = i;
        let mut ok = true;
        for _ in 0..48 {
            if start < 2 || d[start - 1] != 0 {
                ok = false;
                break;
            }
            match d[..start - 1].iter().rposition(|&b| b == 0) {
                Some(nul) if start - 1 - nul <= 65 => start = nul + 1,
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            if let Some((tokens, end)) = tokens_at(d, start) {
                return Some((start, tokens, end));
            }
        }
        from = i + 1;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One entry of the names at `p`: its token numbers and the next entry.
fn entry(d: &[u8], p: usize) -> Option<(&[u8], usize)> {
    let first = *d.get(p)?;
    let (len, p) = if first & 0x80 != 0 {
        (
            usize::from(first & 0x7f) | usize::from(*d.get(p + 1)?) << 7,
            p + 2,
        )
    } else {
        (usize::from(first), p + 1)
    };
    Some((d.get(p..p + len)?, p + len))
}

/// Whether `n` names from `names` agree with `markers` and end at most 8
/// bytes before `end`.
fn names_fit(d: &[u8], names: usize, n: usize, markers: &[u32], end: usize) -> bool {
    let mut p = names;
    for k in 0..n {
        if k % 256 == 0 && markers.get(k / 256).map(|&m| m as usize) != Some(p - names) {
            return false;
        }
        match entry(d, p) {
            Some((_, next)) if next <= end => p = next,
            _ => return false,
        }
    }
    p <= end && end - p < 8
}

/// `kallsyms_num_syms` (its offset, its value) and the names, before the
/// markers at `markers_start`.
fn num_syms(d: &[u8], markers_start: usize, markers: &[u32]) -> Option<(usize, usize, usize)> {
    let last = *markers.last()? as usize;
    let lowest = markers_start.checked_sub(last + 256 * 600 + 16)?;
    let mut a = markers_start.checked_sub(last + 8)? & !3;
    loop {
        if a < lowest {
            return None;
        }
        let n = u32_at(d, a)? as usize;
        if n > 0 && n.div_ceil(256) <= markers.len() {
            if let Some(names) = [a + 4, a + 8]
                .into_iter()
                .find(|&names| names_fit(d, names, n, &markers[..n.div_ceil(256)], markers_start))
            {
                return Some((a, n, names));
            }
        }
        a -= 4;
    }
}

/// The symbols, from the bytes of `.rodata`. None if the tables are not
/// found or do not check out.
pub fn symbols(d: &[u8]) -> Option<Symbols> {
    let (table, tokens, index_end) = token_table(d)?;
    // The markers: before the table (and the 3-byte sequences of 6.2+), a
    // u32 array from 0, increasing by the size of 256 entries; then
    // kallsyms_num_syms and the names up to the markers. The first
    // candidate (from the table back) that checks out.
    let rises = |w: &[u32]| w[1] > w[0] && w[1] - w[0] >= 256 && w[1] - w[0] < 256 * 600;
    let window = table.saturating_sub(8 << 20);
    let mut at = table & !3;
    let (a, n, names) = loop {
        if at < window + 24 {
            return None;
        }
        at -= 4;
        let head: Option<Vec<u32>> = (0..5).map(|k| u32_at(d, at + 4 * k)).collect();
        match head {
            Some(h) if h[0] == 0 && h.windows(2).all(rises) => {}
            _ => continue,
        }
        let run: Vec<u32> = (0..)
            .map_while(|k| u32_at(d, at + 4 * k))
            .take(1 << 16)
            .collect();
        let rising = run.windows(2).take_while(|w| rises(w)).count();
        if let Some(found) = num_syms(d, at, &run[..=rising]) {
            break found;
        }
    };
    // The offsets and the base: before kallsyms_num_syms, or after the
    // token index (newer kernels); the right place is where `_text` is the
    // base.
    let base_before = (a & !7).checked_sub(8)?;
    let candidates = [(base_before.checked_sub(4 * n)?, base_before), {
        let offsets = index_end.next_multiple_of(8);
        (offsets, (offsets + 4 * n).next_multiple_of(8))
    }];
    let names_list: Vec<(u8, Vec<u8>)> = {
        let mut out = Vec::with_capacity(n);
        let mut p = names;
        for _ in 0..n {
            let (toks, next) = entry(d, p)?;
            let name: Vec<u8> = toks
                .iter()
                .flat_map(|&t| tokens[usize::from(t)])
                .copied()
                .collect();
            let (&kind, name) = name.split_first()?;
            out.push((kind, name.to_vec()));
            p = next;
        }
        out
    };
    let position = |wanted: &[u8]| names_list.iter().position(|(_, name)| name == wanted);
    let (text, init_task, modules) = (
        position(b"_text")?,
        position(b"init_task")?,
        position(b"modules")?,
    );
    let current_task = position(b"current_task");
    for (offsets, base_at) in candidates {
        let Some(base) = u64_at(d, base_at) else {
            continue;
        };
        let address = |i: usize| -> Option<u64> {
            let offset = u32_at(d, offsets + 4 * i)? as i32;
            // CONFIG_KALLSYMS_ABSOLUTE_PERCPU (x86_64): a non-negative
            // offset is an absolute value (per-CPU variables), a negative
            // one relative to base - 1.
            Some(if offset >= 0 {
                offset as u64
            } else {
                base.checked_sub(1)?
                    .checked_add(u64::from((-i64::from(offset)) as u32))?
            })
        };
        if address(text) == Some(base) && base >= 0xffff_ffff_8000_0000 {
            return Some(Symbols {
                init_task: address(init_task)?,
                modules: address(modules)?,
                current_task: current_task.and_then(address),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_with_a_two_byte_length() {
        let mut d = vec![0x81, 0x01];
        d.extend(std::iter::repeat(7).take(129));
        let (toks, next) = entry(&d, 0).expect("an entry");
        assert_eq!((toks.len(), next), (129, 131));
        assert_eq!(entry(&[3, 1, 2], 0), None, "cut short");
    }

    #[test]
    fn no_tables_no_symbols() {
        assert_eq!(symbols(&[0u8; 4096]), None);
        let mut d = vec![0u8; 64];
        for c in b'0'..=b'9' {
            d.extend([c, 0]);
        }
        assert_eq!(symbols(&d), None);
    }
}
