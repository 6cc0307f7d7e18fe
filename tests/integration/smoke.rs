#[test]
fn placeholder_builds() {
    assert!(std::path::Path::new(env!("CARGO_BIN_EXE_selfheal")).exists());
}
