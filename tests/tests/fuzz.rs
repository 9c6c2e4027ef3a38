//! The fuzz driver (`harness = false`).
//!
//! Without arguments (what `cargo test` runs in CI) it replays every
//! target's corpus, `tests/data/fuzz/<target>/` (seed files from real data
//! and every finding kept as a regression case), then a fixed set of
//! mutants of it; it fails on the first panic, and an abort or a hang fails
//! the test process.
//!
//! `scripts/fuzz.sh SECONDS` runs it as
//! `fuzz --fuzz TARGET SECONDS [--seed N] [--out DIR] [--tmp DIR]`:
//! mutants of the corpus, without end for SECONDS, each panic saved to
//! `DIR/crashes/`; the input being run is kept in `DIR/current-TARGET`, so
//! that an abort (the script runs it under a memory limit) or a hang (a
//! watchdog ends the process after 10 s on one input) leaves it behind.
//! The last line is a JSON summary: executions, seconds, crashes, hangs.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akida_tests::fuzz::{corpus, is_text, mutate, Outcome, Rng, Runner, Target};

/// Mutants of each target's corpus that CI runs (a few seconds in all).
const REPLAY_MUTANTS: u64 = 300;
/// Mutants of the `.h5` corpus in CI (each opens a file with HDF5).
const REPLAY_H5_MUTANTS: u64 = 100;
/// Seconds on one input after which the fuzzer calls it a hang.
const HANG_SECONDS: u64 = 10;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => replay(),
        Some("--fuzz") => match Options::parse(&args[1..]) {
            Ok(o) => fuzz(&o),
            Err(e) => {
                eprintln!("fuzz: {e}");
                ExitCode::from(2)
            }
        },
        // `cargo test -- --list` and filters: nothing to list or filter.
        Some(_) => ExitCode::SUCCESS,
    }
}

/// CI: every corpus file, then fixed mutants, of every target.
fn replay() -> ExitCode {
    for target in Target::ALL {
        let files = corpus(target);
        assert!(
            !files.is_empty(),
            "no corpus in {}",
            target.corpus_dir().display()
        );
        let runner = Runner::new(target, None).expect("scratch folder");
        let start = Instant::now();
        let (mut parsed, mut refused) = (0, 0);
        for (path, bytes) in &files {
            let outcome = catch_unwind(AssertUnwindSafe(|| runner.run(bytes)))
                .unwrap_or_else(|_| panic!("{}: {} panicked", target.name(), path.display()))
                .expect("scratch file");
            match outcome {
                Outcome::Parsed => parsed += 1,
                Outcome::Refused => refused += 1,
            }
        }
        let count = if target == Target::H5 {
            REPLAY_H5_MUTANTS
        } else {
            REPLAY_MUTANTS
        };
        let mut rng = Rng::new(0x5eed);
        for i in 0..count {
            let a = &files[rng.below(files.len())].1;
            let b = &files[rng.below(files.len())].1;
            let input = mutate(a, b, &mut rng, is_text(target));
            let outcome = catch_unwind(AssertUnwindSafe(|| runner.run(&input)))
                .unwrap_or_else(|_| panic!("{}: mutant {i} of seed 0x5eed panicked", target.name()))
                .expect("scratch file");
            match outcome {
                Outcome::Parsed => parsed += 1,
                Outcome::Refused => refused += 1,
            }
        }
        println!(
            "fuzz replay {}: {} corpus files and {count} mutants, {parsed} parsed, {refused} refused, {:.1} s",
            target.name(),
            files.len(),
            start.elapsed().as_secs_f64()
        );
    }
    ExitCode::SUCCESS
}

struct Options {
    target: Target,
    seconds: u64,
    seed: u64,
    out: PathBuf,
    tmp: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let usage = "usage: --fuzz TARGET SECONDS [--seed N] [--out DIR] [--tmp DIR]";
        let [target, seconds, rest @ ..] = args else {
            return Err(usage.into());
        };
        let target = Target::from_name(target).ok_or_else(|| {
            let names: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
            format!("unknown target `{target}` (targets: {})", names.join(", "))
        })?;
        let seconds = seconds
            .parse()
            .map_err(|_| format!("SECONDS: `{seconds}` is not a number"))?;
        let mut o = Options {
            target,
            seconds,
            seed: 1,
            out: PathBuf::from("target/fuzz"),
            tmp: None,
        };
        let mut it = rest.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--seed" => o.seed = value.parse().map_err(|_| "--seed: not a number")?,
                "--out" => o.out = PathBuf::from(value),
                "--tmp" => o.tmp = Some(PathBuf::from(value)),
                _ => return Err(format!("unknown flag {flag}; {usage}")),
            }
        }
        Ok(o)
    }
}

fn fuzz(o: &Options) -> ExitCode {
    let files = corpus(o.target);
    if files.is_empty() {
        eprintln!("fuzz: no corpus in {}", o.target.corpus_dir().display());
        return ExitCode::from(2);
    }
    let crashes = o.out.join("crashes");
    std::fs::create_dir_all(&crashes).expect("output folder");
    let current_path = o.out.join(format!("current-{}", o.target.name()));
    let current = std::fs::File::create(&current_path).expect("current input file");
    let runner = Runner::new(o.target, o.tmp.as_deref()).expect("scratch folder");
    // Panics are counted and saved, not printed one by one.
    std::panic::set_hook(Box::new(|_| {}));

    let execs = Arc::new(AtomicU64::new(0));
    watchdog(
        Arc::clone(&execs),
        current_path.clone(),
        o.out.join("hangs"),
    );

    let mut rng = Rng::new(o.seed);
    let (mut parsed, mut refused, mut crashed) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let deadline = Duration::from_secs(o.seconds);
    let mut n = 0u64;
    while start.elapsed() < deadline {
        // 256 executions between clock reads.
        for _ in 0..256 {
            let a = &files[rng.below(files.len())].1;
            let b = &files[rng.below(files.len())].1;
            let input = mutate(a, b, &mut rng, is_text(o.target));
            current.set_len(0).expect("current input");
            current.write_all_at(&input, 0).expect("current input");
            match catch_unwind(AssertUnwindSafe(|| runner.run(&input))) {
                Ok(Ok(Outcome::Parsed)) => parsed += 1,
                Ok(Ok(Outcome::Refused)) => refused += 1,
                Ok(Err(e)) => {
                    eprintln!("fuzz: scratch file: {e}");
                    return ExitCode::from(2);
                }
                Err(_) => {
                    crashed += 1;
                    let name = format!("{}-seed{}-{n}", o.target.name(), o.seed);
                    std::fs::write(crashes.join(name), &input).expect("crash file");
                }
            }
            n += 1;
            execs.store(n, Ordering::Relaxed);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"target\": \"{}\", \"seed\": {}, \"execs\": {n}, \"seconds\": {secs:.0}, \"execs_per_second\": {:.0}, \"parsed\": {parsed}, \"refused\": {refused}, \"crashes\": {crashed}, \"hangs\": 0}}",
        o.target.name(),
        o.seed,
        n as f64 / secs
    );
    std::io::stdout().flush().ok();
    if crashed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Ends the process (status 3) when one input runs longer than
/// [`HANG_SECONDS`], keeping it in `hangs/`.
fn watchdog(execs: Arc<AtomicU64>, current: PathBuf, hangs: PathBuf) {
    std::thread::spawn(move || {
        let mut last = u64::MAX;
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = execs.load(Ordering::Relaxed);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() > Duration::from_secs(HANG_SECONDS) {
                save_hang(&current, &hangs, now);
                std::process::exit(3);
            }
        }
    });
}

fn save_hang(current: &Path, hangs: &Path, n: u64) {
    let _ = std::fs::create_dir_all(hangs);
    let _ = std::fs::copy(current, hangs.join(format!("hang-{n}")));
    eprintln!(
        "fuzz: an input ran over {HANG_SECONDS} s; kept in {}",
        hangs.display()
    );
}
