//! Nothing lost when a save is killed: `akida_models create -s m.h5` over an
//! existing model is killed with SIGKILL at random moments; the target must
//! then be the old file, intact, or the new one, complete (read back and
//! compared with the model each seed makes); the temporary file a killed
//! save leaves is removed by the next save.
//!
//! CI: 20 kills on `ds_cnn_cifar10` (about 10 MB). The recorded run of
//! `docs/RELIABILITY.md` sets `AKIDA_KILL_MODEL=vgg_cifar10` and
//! `AKIDA_KILL_RUNS=50` (`AKIDA_KILL_SEED` changes the moments).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

mod common;

use akida_host::fsutil::leftovers;
use akida_host::keras::{read_model, Model};
use common::scratch;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `akida_models create -s m.h5 --seed SEED MODEL` in `dir`, not waited for.
fn create(dir: &Path, model: &str, seed: u64, target: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_akida_models"))
        .args(["create", "-s", target, "--seed", &seed.to_string(), model])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The model of a file, without the raw configs (what the seeds decide).
fn model_of(path: &Path) -> Model {
    let mut m = read_model(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    m.layers.iter_mut().for_each(|l| l.raw = None);
    m
}

/// SplitMix64: the kill moments follow from `AKIDA_KILL_SEED`.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn a_save_killed_at_any_moment_leaves_the_old_or_the_new_file() {
    let model = std::env::var("AKIDA_KILL_MODEL").unwrap_or_else(|_| "ds_cnn_cifar10".into());
    let runs: usize = env_or("AKIDA_KILL_RUNS", 20);
    let mut rng: u64 = env_or("AKIDA_KILL_SEED", 13);
    let tmp = scratch("kill-save", &model);
    let dir = tmp.path();

    // The old file (seed 1) and what the new one must hold (seed 2), and
    // how long a whole save takes.
    assert!(create(dir, &model, 2, "new.h5").wait().unwrap().success());
    let new = model_of(&dir.join("new.h5"));
    let start = Instant::now();
    assert!(create(dir, &model, 1, "m.h5").wait().unwrap().success());
    let full = start.elapsed();
    let old_bytes = std::fs::read(dir.join("m.h5")).unwrap();
    let old = model_of(&dir.join("m.h5"));
    assert_ne!(old, new, "the two seeds make different models");

    let target = dir.join("m.h5");
    let (mut kept_old, mut got_new, mut left) = (0, 0, 0);
    for run in 0..runs {
        // A moment in the whole run (start-up, building, writing, renaming).
        let at = full.mul_f64((next(&mut rng) % 1000) as f64 / 1000.0);
        let mut child = create(dir, &model, 2, "m.h5");
        std::thread::sleep(at);
        child.kill().ok(); // SIGKILL; an error means it had already ended
        child.wait().unwrap();
        left += leftovers(&target).unwrap().len();
        let bytes = std::fs::read(&target).unwrap();
        if bytes == old_bytes {
            kept_old += 1;
        } else {
            assert_eq!(
                model_of(&target),
                new,
                "run {run} (killed after {at:?}): neither the old nor the new model"
            );
            got_new += 1;
            // Back to the old file for the next run.
            std::fs::write(&target, &old_bytes).unwrap();
        }
    }
    // The next save removes what killed saves left, and completes.
    assert!(create(dir, &model, 2, "m.h5").wait().unwrap().success());
    assert_eq!(model_of(&target), new);
    assert_eq!(
        leftovers(&target).unwrap(),
        Vec::<std::path::PathBuf>::new()
    );
    println!(
        "kill test {model}: {runs} runs over a {:.2} s save: {kept_old} kept the old file, {got_new} had the new one, {left} temporary file(s) left by killed saves, none after the next save",
        full.as_secs_f64()
    );
    assert_eq!(kept_old + got_new, runs);
}
