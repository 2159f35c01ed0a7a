//! Types that may cross a plugin boundary: event data, and the arguments
//! and results of exported functions.

/// A type another plugin may read and write: plain data with a fixed
/// layout, owning no heap memory (no `Vec`, `String`, `Box`: the other
/// plugin has its own allocator), described by [`Shared::describe`] so
/// that the SDK can refuse two plugins that disagree on it.
///
/// Implemented for integers, floats, `bool`, `()` and arrays of `Shared`;
/// for a struct, `#[derive(Shared)]` (it needs `#[repr(C)]`, and every
/// field `Shared`) records its size, alignment, fields (name, offset,
/// type) and the name and version of the crate defining it.
///
/// # Safety
/// `describe` must change whenever the layout or meaning of the type
/// does, and every bit pattern another plugin may write through a `&mut`
/// of the same description must be valid (another plugin may be a C
/// plugin subscribed to the event: so no `bool`, `char` or enum; see
/// [`Flag`]). The derive upholds both.
pub unsafe trait Shared: Copy + Send + 'static {
    /// The layout description two plugins must agree on.
    fn describe() -> String;
}

macro_rules! primitive {
    ($($t:ty),*) => {$(
        // SAFETY: a primitive: fixed layout, described by its name (which
        // fixes size and alignment on one host), no heap memory.
        unsafe impl Shared for $t {
            fn describe() -> String {
                stringify!($t).to_owned()
            }
        }
    )*};
}

primitive!(
    u8,
    u16,
    u32,
    u64,
    u128,
    i8,
    i16,
    i32,
    i64,
    i128,
    usize,
    isize,
    f32,
    f64,
    ()
);

/// A yes/no in data shared across plugins: `bool` is not [`Shared`],
/// because another plugin (a C subscriber of an event, say) may store any
/// byte in it, and a `bool` that is neither 0 nor 1 is undefined
/// behaviour. Any byte is a valid `Flag`: non-zero is yes.
#[repr(transparent)]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(u8);

impl Flag {
    /// Yes, or no.
    pub const fn new(value: bool) -> Self {
        Self(value as u8)
    }

    /// Whether the flag is set (any non-zero byte).
    pub const fn get(self) -> bool {
        self.0 != 0
    }

    /// Sets or clears the flag.
    pub fn set(&mut self, value: bool) {
        self.0 = value as u8;
    }
}

impl From<bool> for Flag {
    fn from(value: bool) -> Self {
        Self::new(value)
    }
}

impl std::fmt::Debug for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

// SAFETY: one byte, every value valid (non-zero reads as yes); a distinct
// description, so it never matches a plugin that shares a u8 or a bool.
unsafe impl Shared for Flag {
    fn describe() -> String {
        "flag".to_string()
    }
}

// SAFETY: an array of Shared elements has their layout, N times.
unsafe impl<T: Shared, const N: usize> Shared for [T; N] {
    fn describe() -> String {
        format!("[{}; {N}]", T::describe())
    }
}

/// What `#[derive(Shared)]` expands to: `name@crate version {size S,
/// align A; field: type @offset; ...}`.
pub(crate) fn describe_struct<T>(
    name: &str,
    krate: &str,
    version: &str,
    fields: &[(&str, String, usize)],
) -> String {
    let mut out = format!(
        "{krate}::{name}@{version} {{size {}, align {}",
        std::mem::size_of::<T>(),
        std::mem::align_of::<T>()
    );
    for (field, ty, offset) in fields {
        out.push_str(&format!("; {field}: {ty} @{offset}"));
    }
    out.push('}');
    out
}
