//! What the type system refuses: each file under `tests/ui` must fail to
//! compile, with the error recorded beside it (`TRYBUILD=overwrite cargo
//! test -p qemu-xplugin --test compile_fail` rewrites the records).

#[test]
fn unsound_uses_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
