//! The Cortex-M4F firmware from the host: building it (`firmware/`, its own
//! cargo workspace for `thumbv7em-none-eabihf`), running a session of framed
//! commands ([`akida_core::wire`]) on it under QEMU (`mps2-an386`) over the
//! CMSDK UART or semihosting files, decoding its defmt log, and counting the
//! instructions it executes with a QEMU TCG plugin (`scripts/qemu_icount.c`)
//! or, where the plugin cannot be built, QEMU's `-singlestep -d exec` trace.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use akida_core::wire::{self, Reply};

/// Why the firmware could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    #[error("cannot run {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("building {what} failed ({status}):\n{stderr}")]
    Build {
        what: String,
        status: String,
        stderr: String,
    },
    #[error("{}: no symbol `{symbol}` in the firmware", path.display())]
    Symbol { path: PathBuf, symbol: String },
    #[error("{}: cannot read the firmware ELF", path.display())]
    Elf {
        path: PathBuf,
        #[source]
        source: object::Error,
    },
    #[error("the firmware exited with code {code:?} after {replies} of {expected} replies{log}")]
    Exit {
        code: Option<i32>,
        replies: usize,
        expected: usize,
        /// The firmware's log, one indented line each.
        log: String,
    },
    #[error("QEMU did not finish in {0:?} (the firmware hung)")]
    Timeout(Duration),
    #[error("the firmware's replies are malformed at byte {0}")]
    Replies(usize),
    #[error("the instruction counts of QEMU are unreadable: {0}")]
    Counts(String),
    #[error("I/O with QEMU")]
    Io(#[from] std::io::Error),
}

/// The `firmware/` directory of the source tree (or `AKIDA_FIRMWARE_DIR`).
pub fn firmware_dir() -> PathBuf {
    match std::env::var_os("AKIDA_FIRMWARE_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("firmware"),
    }
}

/// `cargo` in `dir` for the firmware's own workspace and target: the
/// variables a host build sets are removed (they would retarget it).
fn cargo_in(dir: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    c
}

/// Builds a binary of the firmware workspace in release mode and returns
/// its ELF: `package` (the QEMU firmware when `None`), extra cargo
/// arguments, and environment (`AKIDA_MODEL`, ...).
pub fn build(
    dir: &Path,
    package: Option<&str>,
    args: &[&str],
    env: &[(&str, &Path)],
) -> Result<PathBuf, FirmwareError> {
    let mut c = cargo_in(dir);
    c.args(["build", "--release", "--quiet"]);
    if let Some(p) = package {
        c.args(["-p", p]);
    }
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().map_err(|source| FirmwareError::Spawn {
        program: "cargo".into(),
        source,
    })?;
    if !out.status.success() {
        return Err(FirmwareError::Build {
            what: format!("the firmware ({})", package.unwrap_or("akida-firmware")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(dir
        .join("target/thumbv7em-none-eabihf/release")
        .join(package.unwrap_or("akida-firmware")))
}

/// The QEMU firmware with run-time loading, built if needed.
pub fn qemu_firmware() -> Result<PathBuf, FirmwareError> {
    build(&firmware_dir(), None, &[], &[])
}

/// The QEMU firmware as a product ships it: the model (`.akd` bytes)
/// embedded at build time, no run-time loader, every buffer sized from the
/// model. Built in its own target folder (`firmware/target/deployed`, so
/// that the loader build the other tools run is never replaced under them)
/// under a file lock, and copied out: each caller gets its own ELF even
/// when several build for different models at once.
pub fn deployed_firmware(akd: &[u8]) -> Result<DeployedFirmware, FirmwareError> {
    let dir = firmware_dir();
    let target = dir.join("target").join("deployed");
    fs::create_dir_all(&target)?;
    let lock = fs::File::create(target.join("build.lock"))?;
    lock.lock()?;
    // The same path every time, rewritten only when the model changes, so
    // that cargo rebuilds only then.
    let model = target.join("model.akd");
    if fs::read(&model).ok().as_deref() != Some(akd) {
        fs::write(&model, akd)?;
    }
    let target_arg = target.to_string_lossy().into_owned();
    build(
        &dir,
        None,
        &["--no-default-features", "--target-dir", &target_arg],
        &[("AKIDA_MODEL", &model)],
    )?;
    let built = target.join("thumbv7em-none-eabihf/release/akida-firmware");
    let built = built.canonicalize().unwrap_or(built);
    let copy = tempfile::tempdir()?;
    let elf = copy.path().join("akida-firmware");
    fs::copy(&built, &elf)?;
    drop(lock);
    Ok(DeployedFirmware {
        _dir: copy,
        elf,
        built,
    })
}

/// A firmware ELF built by [`deployed_firmware`], kept while this lives.
#[derive(Debug)]
pub struct DeployedFirmware {
    _dir: tempfile::TempDir,
    /// The caller's copy.
    pub elf: PathBuf,
    /// Where cargo built it.
    pub built: PathBuf,
}

/// The instruction-counting plugin, compiled from `scripts/qemu_icount.c`
/// with the C compiler (`CC`, default `cc`) when missing or stale.
pub fn plugin() -> Result<PathBuf, FirmwareError> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/qemu_icount.c");
    let dir = firmware_dir().join("target");
    fs::create_dir_all(&dir)?;
    let lib = dir.join("qemu_icount.so");
    let stale = match (fs::metadata(&lib), fs::metadata(&source)) {
        (Ok(l), Ok(s)) => l.modified()? < s.modified()?,
        _ => true,
    };
    if stale {
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let tmp = dir.join(format!("qemu_icount.{}.so", std::process::id()));
        let out = Command::new(&cc)
            .args(["-O2", "-fPIC", "-shared", "-o"])
            .arg(&tmp)
            .arg(&source)
            .output()
            .map_err(|source| FirmwareError::Spawn {
                program: cc.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(FirmwareError::Build {
                what: "the QEMU plugin".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        fs::rename(&tmp, &lib)?;
    }
    Ok(lib)
}

/// The address of a function of the firmware (Thumb bit cleared).
pub fn symbol(elf: &Path, name: &str) -> Result<u64, FirmwareError> {
    use object::{Object, ObjectSymbol};
    let bytes = fs::read(elf)?;
    let file = object::File::parse(&*bytes).map_err(|source| FirmwareError::Elf {
        path: elf.to_owned(),
        source,
    })?;
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| s.address() & !1)
        .ok_or_else(|| FirmwareError::Symbol {
            path: elf.to_owned(),
            symbol: name.into(),
        })
}

/// Bytes of flash (code, read-only data, initialised data) and of static
/// RAM (initialised and zeroed data) of a firmware ELF.
pub fn image_sizes(elf: &Path) -> Result<(u64, u64), FirmwareError> {
    use object::{Object, ObjectSection, SectionKind};
    let bytes = fs::read(elf)?;
    let file = object::File::parse(&*bytes).map_err(|source| FirmwareError::Elf {
        path: elf.to_owned(),
        source,
    })?;
    let (mut flash, mut ram) = (0, 0);
    for s in file.sections() {
        let name = s.name().unwrap_or("");
        match s.kind() {
            SectionKind::Text | SectionKind::ReadOnlyData | SectionKind::ReadOnlyString
                if !name.starts_with(".defmt") =>
            {
                flash += s.size()
            }
            SectionKind::Data => {
                flash += s.size();
                ram += s.size();
            }
            SectionKind::UninitializedData => ram += s.size(),
            _ => {}
        }
    }
    Ok((flash, ram))
}

/// A session of commands for the firmware, and what each expects back.
#[derive(Clone, Debug, Default)]
pub struct Session {
    pub bytes: Vec<u8>,
    /// One entry per frame sent.
    pub commands: Vec<wire::Command>,
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    fn push(&mut self, c: wire::Command, payload: &[u8]) -> &mut Self {
        self.bytes.extend(wire::frame(c as u8, payload));
        self.commands.push(c);
        self
    }

    /// Loads `.akd` bytes into the device's arena.
    pub fn load(&mut self, akd: &[u8]) -> &mut Self {
        self.push(wire::Command::Load, akd)
    }

    /// Makes the model embedded at build time active.
    pub fn embedded(&mut self) -> &mut Self {
        self.push(wire::Command::Embedded, &[])
    }

    /// One inference on `input` (HWC uint8).
    pub fn infer(&mut self, input: &[u8]) -> &mut Self {
        self.push(wire::Command::Infer, input)
    }

    /// The class names of the model's outputs, for the device's log.
    pub fn labels<S: AsRef<str>>(&mut self, names: &[S]) -> &mut Self {
        let text: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        self.push(wire::Command::Labels, text.join("\n").as_bytes())
    }

    /// One second of 16 kHz PCM for the device's keyword front end and model.
    pub fn keyword(&mut self, pcm: &[i16; akida_core::mfcc::CLIP_SAMPLES]) -> &mut Self {
        let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        self.push(wire::Command::Keyword, &bytes)
    }

    /// The device's memory and active model.
    pub fn info(&mut self) -> &mut Self {
        self.push(wire::Command::Info, &[])
    }

    /// An echoed sequence number.
    pub fn ping(&mut self, seq: u32) -> &mut Self {
        self.push(wire::Command::Ping, &seq.to_le_bytes())
    }

    /// Raw bytes (a damaged frame), expecting at least one reply.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// The end of the session.
    pub fn quit(&mut self) -> &mut Self {
        self.push(wire::Command::Quit, &[])
    }
}

/// How the firmware talks to the host under QEMU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// Session and replies in host files (semihosting): fast.
    #[default]
    Semihosting,
    /// The CMSDK UART0 (QEMU `-serial` on a pipe): what a board does.
    Uart,
}

impl Transport {
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Semihosting => "semihosting",
            Transport::Uart => "uart",
        }
    }
}

/// How instructions are counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Counting {
    /// Not at all.
    #[default]
    Off,
    /// The TCG plugin (exact, fast).
    Plugin,
    /// `-singlestep -d exec`: one trace line per instruction (slow).
    Trace,
}

/// How a command runs the firmware under QEMU (`akida flash --target
/// qemu`, `kws_demo`).
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub transport: Transport,
    pub counting: Counting,
    /// A firmware ELF to use instead of building one from `firmware/`.
    pub firmware: Option<PathBuf>,
    /// Longest run before the firmware is declared hung.
    pub timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            transport: Transport::Semihosting,
            counting: Counting::Plugin,
            firmware: None,
            timeout: Duration::from_secs(300),
        }
    }
}

impl RunOptions {
    /// The QEMU run of `elf` these options describe.
    pub fn config(&self, elf: PathBuf) -> QemuConfig {
        QemuConfig {
            elf,
            transport: self.transport,
            counting: self.counting,
            timeout: self.timeout,
        }
    }
}

/// A QEMU run of the firmware.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    pub elf: PathBuf,
    pub transport: Transport,
    pub counting: Counting,
    /// Longest run before the firmware is declared hung.
    pub timeout: Duration,
}

impl QemuConfig {
    pub fn new(elf: PathBuf) -> QemuConfig {
        QemuConfig {
            elf,
            transport: Transport::Semihosting,
            counting: Counting::Off,
            timeout: Duration::from_secs(300),
        }
    }
}

/// Instructions counted during a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every instruction of the run (boot and I/O included).
    pub total: u64,
    /// The running count at each call of `akida_mark` (before each
    /// inference and after each of its layers).
    pub marks: Vec<u64>,
}

/// What a QEMU run gave back.
#[derive(Clone, Debug)]
pub struct QemuRun {
    pub replies: Vec<Reply>,
    /// QEMU's exit status (the firmware's exit code).
    pub exit: Option<i32>,
    /// The decoded defmt log.
    pub log: Vec<String>,
    pub counts: Option<Counts>,
    pub wall: Duration,
}

impl QemuRun {
    /// Whether the session ran to its end: `expected` replies and exit
    /// code 0 (after `Quit`); if not, the error holds the firmware's log.
    pub fn completed(&self, expected: usize) -> Result<(), FirmwareError> {
        if self.replies.len() == expected && self.exit == Some(0) {
            return Ok(());
        }
        Err(FirmwareError::Exit {
            code: self.exit,
            replies: self.replies.len(),
            expected,
            log: self.log.iter().map(|l| format!("\n  {l}")).collect(),
        })
    }
}

/// Runs a session on the firmware under QEMU.
pub fn run(config: &QemuConfig, session: &Session) -> Result<QemuRun, FirmwareError> {
    let dir = tempfile::tempdir()?;
    let work = dir.path();
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args([
        "-machine",
        "mps2-an386",
        "-cpu",
        "cortex-m4",
        "-display",
        "none",
    ])
    .args(["-monitor", "none"])
    .args(["-semihosting-config", "enable=on,target=native"])
    .arg("-kernel")
    .arg(&config.elf)
    .current_dir(work)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let counts_path = work.join("counts.txt");
    let trace_path = work.join("trace.txt");
    match config.counting {
        Counting::Off => {}
        Counting::Plugin => {
            let mark = symbol(&config.elf, "akida_mark")?;
            let arg = format!(
                "{},mark={mark:#x},out={}",
                plugin()?.display(),
                counts_path.display()
            );
            cmd.args(["-plugin", &arg]);
        }
        Counting::Trace => {
            cmd.args(["-singlestep", "-d", "exec,nochain", "-D"])
                .arg(&trace_path);
        }
    }
    let start = Instant::now();
    let (mut child, writer, reader) = match config.transport {
        Transport::Semihosting => {
            fs::write(work.join("session.bin"), &session.bytes)?;
            cmd.args([
                "-serial",
                "none",
                "-append",
                "semihosting session.bin replies.bin",
            ]);
            let child = cmd.spawn().map_err(|source| FirmwareError::Spawn {
                program: "qemu-system-arm".into(),
                source,
            })?;
            (child, None, None)
        }
        Transport::Uart => {
            for end in ["uart.in", "uart.out"] {
                let status = Command::new("mkfifo").arg(work.join(end)).status()?;
                if !status.success() {
                    return Err(FirmwareError::Io(std::io::Error::other("mkfifo failed")));
                }
            }
            cmd.args(["-chardev"])
                .arg(format!("pipe,id=uart,path={}", work.join("uart").display()))
                .args(["-serial", "chardev:uart", "-append", "uart"]);
            let child = cmd.spawn().map_err(|source| FirmwareError::Spawn {
                program: "qemu-system-arm".into(),
                source,
            })?;
            // QEMU holds both FIFOs read-write, so these opens do not block.
            let mut input = fs::OpenOptions::new()
                .write(true)
                .open(work.join("uart.in"))?;
            let mut output = fs::File::open(work.join("uart.out"))?;
            let bytes = session.bytes.clone();
            let writer = std::thread::spawn(move || input.write_all(&bytes));
            let reader = std::thread::spawn(move || {
                let mut buf = Vec::new();
                output.read_to_end(&mut buf).map(|_| buf)
            });
            (child, Some(writer), Some(reader))
        }
    };
    let mut stdout = child.stdout.take().expect("piped");
    let log_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).map(|_| buf)
    });
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > config.timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(FirmwareError::Timeout(config.timeout));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = start.elapsed();
    let log_bytes = log_reader.join().expect("log reader")?;
    let reply_bytes = match (writer, reader) {
        (Some(w), Some(r)) => {
            // The writer may fail with a broken pipe if the firmware quit early.
            let _ = w.join();
            r.join().expect("UART reader")?
        }
        _ => fs::read(work.join("replies.bin")).unwrap_or_default(),
    };
    let replies = wire::parse_replies(&reply_bytes).map_err(FirmwareError::Replies)?;
    let counts = match config.counting {
        Counting::Off => None,
        Counting::Plugin => Some(read_counts(&counts_path)?),
        Counting::Trace => Some(read_trace(&trace_path, symbol(&config.elf, "akida_mark")?)?),
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let mut log = decode_log(&config.elf, &log_bytes);
    log.extend(
        stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("qemu: {l}")),
    );
    Ok(QemuRun {
        replies,
        exit: status.code(),
        log,
        counts,
        wall,
    })
}

fn read_counts(path: &Path) -> Result<Counts, FirmwareError> {
    let text = fs::read_to_string(path)
        .map_err(|e| FirmwareError::Counts(format!("{}: {e}", path.display())))?;
    let mut c = Counts::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (key, value) = (it.next(), it.next().and_then(|v| v.parse::<u64>().ok()));
        match (key, value) {
            (Some("insns"), Some(v)) => c.total = v,
            (Some("mark"), Some(v)) => c.marks.push(v),
            _ => return Err(FirmwareError::Counts(format!("unexpected line `{line}`"))),
        }
    }
    Ok(c)
}

/// Counts the `Trace` lines of a `-singlestep -d exec` log (one per
/// instruction), noting the count at each execution of `mark`.
fn read_trace(path: &Path, mark: u64) -> Result<Counts, FirmwareError> {
    use std::io::BufRead;
    let file = fs::File::open(path)
        .map_err(|e| FirmwareError::Counts(format!("{}: {e}", path.display())))?;
    let mut c = Counts::default();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if !line.starts_with("Trace") {
            continue;
        }
        // `Trace 0: 0x7f.. [00000000/PC/...]`: the guest PC is the second field.
        let pc = line
            .split('[')
            .nth(1)
            .and_then(|f| f.split('/').nth(1))
            .and_then(|pc| u64::from_str_radix(pc, 16).ok());
        if pc == Some(mark) {
            c.marks.push(c.total);
        }
        c.total += 1;
    }
    Ok(c)
}

/// The firmware's defmt frames as text lines (`LEVEL message`); bytes that
/// do not decode are reported as such.
pub fn decode_log(elf: &Path, bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let table = match fs::read(elf).map(|b| defmt_decoder::Table::parse(&b)) {
        Ok(Ok(Some(t))) => t,
        _ => {
            return vec![format!(
                "({} bytes of log, no defmt table in the ELF)",
                bytes.len()
            )]
        }
    };
    let mut decoder = table.new_stream_decoder();
    decoder.received(bytes);
    let mut out = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => {
                let level = frame.level().map_or("", |l| l.as_str()).to_uppercase();
                out.push(format!("{level} {}", frame.display_message()));
            }
            Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
            Err(defmt_decoder::DecodeError::Malformed) => {
                out.push("(malformed defmt frame)".into());
                if table.encoding().can_recover() {
                    continue;
                }
                break;
            }
        }
    }
    out
}

/// Per inference, the instructions of each layer from the marks of a run
/// (`layers + 1` marks per inference).
pub fn layer_counts(marks: &[u64], layers: usize) -> Vec<Vec<u64>> {
    marks
        .chunks_exact(layers + 1)
        .map(|m| m.windows(2).map(|w| w[1] - w[0]).collect())
        .collect()
}
