//! The plugin's rules, as its arguments give them, and the checks between
//! them.

use qemu_xplugin::FromArg;

/// What a rule does to the accesses in its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `load=ADDR[+LEN]=VALUE`: loads return `VALUE`, no device is read.
    Load(u64),
    /// `store=ADDR[+LEN]=FROM:TO`: a store of `FROM` stores `TO`.
    Store { from: u64, to: u64 },
    /// `drop=ADDR[+LEN]`: stores are dropped.
    Drop,
}

/// One rule: an action on the physical addresses `first..first + len`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    pub first: u64,
    /// At least 1, and `first + len - 1` does not wrap.
    pub len: u64,
    /// The argument as given, `key=value`: how the plugin names the rule.
    pub text: String,
}

impl Rule {
    /// The last address of the range (inclusive).
    pub fn last(&self) -> u64 {
        self.first + (self.len - 1)
    }

    /// Whether the rule acts on stores (else on loads).
    pub fn on_stores(&self) -> bool {
        !matches!(self.action, Action::Load(_))
    }

    fn overlaps(&self, other: &Rule) -> bool {
        self.first <= other.last() && other.first <= self.last()
    }
}

/// An integer argument part, named in the error: `ADDR '0xzz': expected ...`.
fn number(what: &str, text: &str) -> Result<u64, String> {
    u64::from_arg(text).map_err(|why| format!("{what} '{text}': {why}"))
}

/// `ADDR[+LEN]`: the first address and the length (1 without `+LEN`).
fn range(text: &str) -> Result<(u64, u64), String> {
    let (addr, len) = match text.split_once('+') {
        Some((addr, len)) => (number("ADDR", addr)?, number("LEN", len)?),
        None => (number("ADDR", text)?, 1),
    };
    if len == 0 {
        return Err("LEN is 0: the range is empty".to_owned());
    }
    if addr.checked_add(len - 1).is_none() {
        return Err(format!(
            "{addr:#x}+{len:#x} goes past the end of the 64-bit address space"
        ));
    }
    Ok((addr, len))
}

/// The value of a `load=` argument.
pub struct LoadArg(pub Rule);

impl FromArg for LoadArg {
    fn from_arg(value: &str) -> Result<Self, String> {
        let (at, data) = value.split_once('=').ok_or("expected ADDR[+LEN]=VALUE")?;
        let (first, len) = range(at)?;
        Ok(Self(Rule {
            action: Action::Load(number("VALUE", data)?),
            first,
            len,
            text: format!("load={value}"),
        }))
    }
}

/// The value of a `store=` argument.
pub struct StoreArg(pub Rule);

impl FromArg for StoreArg {
    fn from_arg(value: &str) -> Result<Self, String> {
        let (at, change) = value.split_once('=').ok_or("expected ADDR[+LEN]=FROM:TO")?;
        let (from, to) = change
            .split_once(':')
            .ok_or("expected ADDR[+LEN]=FROM:TO")?;
        let (first, len) = range(at)?;
        Ok(Self(Rule {
            action: Action::Store {
                from: number("FROM", from)?,
                to: number("TO", to)?,
            },
            first,
            len,
            text: format!("store={value}"),
        }))
    }
}

/// The value of a `drop=` argument.
pub struct DropArg(pub Rule);

impl FromArg for DropArg {
    fn from_arg(value: &str) -> Result<Self, String> {
        let (first, len) = range(value)?;
        Ok(Self(Rule {
            action: Action::Drop,
            first,
            len,
            text: format!("drop={value}"),
        }))
    }
}

/// Refuses two rules that act on the same accesses: two rules on loads,
/// or two on stores (`store=` and `drop=`), whose ranges overlap. QEMU
/// would run the first registered, and the second would act on what the
/// first left or not at all.
pub fn check_overlaps(rules: &[Rule]) -> Result<(), String> {
    for (i, a) in rules.iter().enumerate() {
        for b in &rules[i + 1..] {
            if a.on_stores() == b.on_stores() && a.overlaps(b) {
                return Err(format!(
                    "rules {} and {} overlap at {:#x}: both act on {}; give each address one rule",
                    a.text,
                    b.text,
                    a.first.max(b.first),
                    if a.on_stores() { "stores" } else { "loads" }
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse() {
        let LoadArg(rule) = LoadArg::from_arg("0xfe000000=0x600dcafe").unwrap();
        assert_eq!(rule.action, Action::Load(0x600d_cafe));
        assert_eq!(
            (rule.first, rule.len, rule.last()),
            (0xfe00_0000, 1, 0xfe00_0000)
        );
        assert_eq!(rule.text, "load=0xfe000000=0x600dcafe");
        let LoadArg(rule) = LoadArg::from_arg("0x1000+0x10=7").unwrap();
        assert_eq!((rule.first, rule.len, rule.last()), (0x1000, 16, 0x100f));
        let StoreArg(rule) = StoreArg::from_arg("0xfee00080=0x10:0x20").unwrap();
        assert_eq!(
            rule.action,
            Action::Store {
                from: 0x10,
                to: 0x20
            }
        );
        let DropArg(rule) = DropArg::from_arg("0xfee00080+4").unwrap();
        assert_eq!((rule.action, rule.len), (Action::Drop, 4));
        let DropArg(rule) = DropArg::from_arg("0xffffffffffffffff").unwrap();
        assert_eq!(rule.last(), u64::MAX);
    }

    #[test]
    fn bad_rules_say_why() {
        let err = |r: Result<LoadArg, String>| r.err().unwrap();
        assert_eq!(
            err(LoadArg::from_arg("0xfe000000")),
            "expected ADDR[+LEN]=VALUE"
        );
        assert_eq!(
            err(LoadArg::from_arg("0xfe000000=lots")),
            "VALUE 'lots': expected an integer from 0 to 18446744073709551615 (decimal or 0x hexadecimal)"
        );
        assert_eq!(
            err(LoadArg::from_arg("0xfe000000+0=1")),
            "LEN is 0: the range is empty"
        );
        assert_eq!(
            err(LoadArg::from_arg("0xffffffffffffffff+2=1")),
            "0xffffffffffffffff+0x2 goes past the end of the 64-bit address space"
        );
        assert!(StoreArg::from_arg("0x10=0x10").is_err());
        assert!(StoreArg::from_arg("0x10=0x10:x").is_err());
        assert!(DropArg::from_arg("").is_err());
    }

    #[test]
    fn overlapping_rules_on_the_same_side_are_refused() {
        let load = |s| LoadArg::from_arg(s).map(|a| a.0).unwrap();
        let store = |s| StoreArg::from_arg(s).map(|a| a.0).unwrap();
        let drop = |s| DropArg::from_arg(s).map(|a| a.0).unwrap();
        // A load rule and a drop rule on one register: a device model.
        check_overlaps(&[load("0x1000+4=1"), drop("0x1000+4")]).unwrap();
        // Adjacent ranges do not overlap.
        check_overlaps(&[load("0x1000+4=1"), load("0x1004+4=2")]).unwrap();
        assert_eq!(
            check_overlaps(&[load("0x1000+8=1"), load("0x1004=2")]).unwrap_err(),
            "rules load=0x1000+8=1 and load=0x1004=2 overlap at 0x1004: both act on loads; give each address one rule"
        );
        assert_eq!(
            check_overlaps(&[store("0x1000=1:2"), drop("0x1000")]).unwrap_err(),
            "rules store=0x1000=1:2 and drop=0x1000 overlap at 0x1000: both act on stores; give each address one rule"
        );
    }
}
