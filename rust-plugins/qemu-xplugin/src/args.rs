//! Plugin arguments: `-plugin libfoo.so,key=value,key=value`.

use crate::{Error, ErrorKind, Result};

/// The arguments QEMU passed to the plugin, taken by key.
///
/// Every argument must be taken: after the install function returns, an
/// argument it did not take is an error that names it. A key may be given
/// several times and taken with [`Args::take_all`].
#[derive(Debug, Default)]
pub struct Args {
    pending: Vec<(String, String)>,
    known: Vec<String>,
}

impl Args {
    /// Parses `key=value` strings.
    pub fn parse<I, S>(args: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut pending = Vec::new();
        for arg in args {
            let arg = arg.as_ref();
            let (key, value) = arg.split_once('=').ok_or_else(|| {
                Error::with_kind(
                    ErrorKind::Argument,
                    format!("argument '{arg}' has no value (write {arg}=VALUE)"),
                )
            })?;
            if key.is_empty() {
                return Err(Error::with_kind(
                    ErrorKind::Argument,
                    format!("argument '{arg}' has no key"),
                ));
            }
            pending.push((key.to_owned(), value.to_owned()));
        }
        Ok(Self {
            pending,
            known: Vec::new(),
        })
    }

    /// Takes the value of `key`, if given. Given more than once is an error.
    pub fn take<T: FromArg>(&mut self, key: &str) -> Result<Option<T>> {
        let mut values = self.take_all::<T>(key)?;
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            n => Err(Error::with_kind(
                ErrorKind::Argument,
                format!("argument '{key}' is given {n} times, expected once"),
            )),
        }
    }

    /// Takes the value of `key`, or `default` when it is not given.
    pub fn take_or<T: FromArg>(&mut self, key: &str, default: T) -> Result<T> {
        Ok(self.take(key)?.unwrap_or(default))
    }

    /// Takes the value of `key`, which must be given.
    pub fn require<T: FromArg>(&mut self, key: &str) -> Result<T> {
        self.take(key)?.ok_or_else(|| {
            Error::with_kind(
                ErrorKind::Argument,
                format!("missing argument '{key}' (write {key}=VALUE)"),
            )
        })
    }

    /// Takes every value of `key`, in command line order.
    pub fn take_all<T: FromArg>(&mut self, key: &str) -> Result<Vec<T>> {
        self.known.push(key.to_owned());
        let mut values = Vec::new();
        let mut rest = Vec::new();
        for (k, v) in self.pending.drain(..) {
            if k == key {
                values.push(T::from_arg(&v).map_err(|why| {
                    Error::with_kind(ErrorKind::Argument, format!("argument {k}='{v}': {why}"))
                })?);
            } else {
                rest.push((k, v));
            }
        }
        self.pending = rest;
        Ok(values)
    }

    /// Fails if an argument was not taken, naming it and the known keys.
    pub fn finish(&self) -> Result<()> {
        match self.pending.first() {
            None => Ok(()),
            Some((key, value)) => {
                let mut known = self.known.clone();
                known.sort();
                known.dedup();
                let known = if known.is_empty() {
                    "this plugin takes no arguments".to_owned()
                } else {
                    format!("known: {}", known.join(", "))
                };
                Err(Error::with_kind(
                    ErrorKind::Argument,
                    format!("unknown argument '{key}={value}' ({known})"),
                ))
            }
        }
    }
}

/// A type a plugin argument's value converts to.
pub trait FromArg: Sized {
    /// Converts `value`, or says what was expected.
    fn from_arg(value: &str) -> std::result::Result<Self, String>;
}

impl FromArg for String {
    fn from_arg(value: &str) -> std::result::Result<Self, String> {
        Ok(value.to_owned())
    }
}

impl FromArg for bool {
    fn from_arg(value: &str) -> std::result::Result<Self, String> {
        match value {
            "on" | "yes" | "true" => Ok(true),
            "off" | "no" | "false" => Ok(false),
            _ => Err("expected on, yes, true, off, no or false".to_owned()),
        }
    }
}

macro_rules! from_arg_int {
    ($($ty:ty),*) => {$(
        impl FromArg for $ty {
            /// Decimal, or hexadecimal with `0x`, and an optional `-`.
            fn from_arg(value: &str) -> std::result::Result<Self, String> {
                let (negative, digits) = match value.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, value),
                };
                let parsed = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
                    Some(hex) => i128::from_str_radix(hex, 16),
                    None => digits.parse::<i128>(),
                };
                parsed
                    .ok()
                    .filter(|_| !digits.starts_with('+'))
                    .map(|n| if negative { -n } else { n })
                    .and_then(|n| <$ty>::try_from(n).ok())
                    .ok_or_else(|| format!(
                        "expected an integer from {} to {} (decimal or 0x hexadecimal)",
                        <$ty>::MIN, <$ty>::MAX
                    ))
            }
        }
    )*};
}

from_arg_int!(u8, u16, u32, u64, usize, i32, i64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_typed_values() {
        let mut args = Args::parse(["pc=0x401000", "count=3", "verbose=on", "reg=rax"]).unwrap();
        assert_eq!(args.require::<u64>("pc").unwrap(), 0x401000);
        assert_eq!(args.take::<u32>("count").unwrap(), Some(3));
        assert!(args.take_or("verbose", false).unwrap());
        assert_eq!(args.take::<String>("reg").unwrap().as_deref(), Some("rax"));
        assert_eq!(args.take::<u32>("absent").unwrap(), None);
        args.finish().unwrap();
    }

    #[test]
    fn negative_and_hex_integers() {
        assert_eq!(i64::from_arg("-4242"), Ok(-4242));
        assert_eq!(i64::from_arg("-0x10"), Ok(-16));
        assert!(u64::from_arg("-1").is_err());
        assert!(u8::from_arg("256").is_err());
        assert!(u32::from_arg("+3").is_err());
        assert!(u32::from_arg("").is_err());
    }

    #[test]
    fn bad_value_names_the_argument() {
        let mut args = Args::parse(["count=lots"]).unwrap();
        let err = args.take::<u32>("count").unwrap_err();
        assert_eq!(
            err.message(),
            "argument count='lots': expected an integer from 0 to 4294967295 (decimal or 0x hexadecimal)"
        );
    }

    #[test]
    fn unknown_argument_is_named_with_the_known_ones() {
        let mut args = Args::parse(["pc=1", "bogus=2"]).unwrap();
        args.take::<u64>("pc").unwrap();
        args.take::<u64>("count").unwrap();
        assert_eq!(
            args.finish().unwrap_err().message(),
            "unknown argument 'bogus=2' (known: count, pc)"
        );
    }

    #[test]
    fn malformed_arguments_are_errors() {
        assert_eq!(
            Args::parse(["verbose"]).unwrap_err().message(),
            "argument 'verbose' has no value (write verbose=VALUE)"
        );
        assert!(Args::parse(["=3"]).is_err());
        let mut args = Args::parse(["pc=1", "pc=2"]).unwrap();
        assert_eq!(
            args.take::<u64>("pc").unwrap_err().message(),
            "argument 'pc' is given 2 times, expected once"
        );
        assert_eq!(
            Args::parse(Vec::<String>::new())
                .unwrap()
                .require::<u64>("pc")
                .unwrap_err()
                .message(),
            "missing argument 'pc' (write pc=VALUE)"
        );
    }

    #[test]
    fn repeated_keys_in_order() {
        let mut args = Args::parse(["write=a", "x=1", "write=b"]).unwrap();
        assert_eq!(args.take_all::<String>("write").unwrap(), ["a", "b"]);
        args.take::<u8>("x").unwrap();
        args.finish().unwrap();
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever QEMU passes, parsing and taking never panic, every
            /// value comes back in order under its key, and finish() fails
            /// exactly when a key was not taken.
            #[test]
            fn parse_take_finish(
                pairs in proptest::collection::vec(("[a-z_]{1,6}", "[ -~]{0,12}"), 0..12),
                skip in "[a-z_]{1,6}",
            ) {
                let raw: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let mut args = Args::parse(&raw).unwrap();
                let mut keys: Vec<&String> = pairs.iter().map(|(k, _)| k).collect();
                keys.sort();
                keys.dedup();
                for key in keys.iter().filter(|k| ***k != skip) {
                    let expected: Vec<&String> =
                        pairs.iter().filter(|(k, _)| k == *key).map(|(_, v)| v).collect();
                    let got = args.take_all::<String>(key).unwrap();
                    prop_assert_eq!(got.iter().collect::<Vec<_>>(), expected);
                }
                let skipped = pairs.iter().any(|(k, _)| *k == skip);
                prop_assert_eq!(args.finish().is_err(), skipped);
            }

            /// Integers round-trip in decimal and hexadecimal.
            #[test]
            fn integers_round_trip(n in any::<u64>(), m in any::<i64>()) {
                prop_assert_eq!(u64::from_arg(&n.to_string()), Ok(n));
                prop_assert_eq!(u64::from_arg(&format!("{n:#x}")), Ok(n));
                prop_assert_eq!(i64::from_arg(&m.to_string()), Ok(m));
            }

            /// Any text is a value or an error, never a panic.
            #[test]
            fn any_text_converts_or_errs(text in "\\PC*") {
                let _ = u64::from_arg(&text);
                let _ = i64::from_arg(&text);
                let _ = u8::from_arg(&text);
                let _ = bool::from_arg(&text);
                let _ = Args::parse([text.as_str()]);
            }
        }
    }
}
