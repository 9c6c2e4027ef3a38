//! The README's example runs as snapshot tests (`trycmd`): each case in
//! `tests/cmd` is a documented command with its output, run against the
//! binaries of this crate. `*.md` cases run their commands one after the
//! other in a sandbox folder (they have a `*.out/`); the `*.toml` cases only
//! read reference files from the repository root. `TRYCMD=overwrite` rewrites
//! the expected outputs from the real ones.

#[test]
fn readme_example_runs() {
    trycmd::TestCases::new()
        .register_bin("akida", trycmd::cargo::cargo_bin!("akida"))
        .register_bin("akida_models", trycmd::cargo::cargo_bin!("akida_models"))
        .register_bin("cnn2snn", trycmd::cargo::cargo_bin!("cnn2snn"))
        .case("tests/cmd/*.md")
        .case("tests/cmd/*.toml");
}
