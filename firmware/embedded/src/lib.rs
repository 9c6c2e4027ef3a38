//! # akida-embedded
//!
//! Akida 1.0 inference on a Cortex-M4F, as a library a board project calls:
//! akida-core's streaming engine ([`akida_core::stream`], the M4 DSP kernels
//! of [`akida_core::kernels::m4`]) behind the `embedded-io` byte-stream
//! traits, speaking the framed protocol of [`akida_core::wire`].
//!
//! - A model embedded at build time ([`embedded_model!`], prepared and
//!   checked by `akida-embedded-build` in the board's `build.rs`), read from
//!   flash where it lies.
//! - Models loaded at run time over the I/O boundary into a static arena
//!   ([`wire::Command::Load`]), refused with a status code when corrupt,
//!   too large or not an Akida 1.0 model.
//! - Every buffer is a static the caller declares (the linker places them:
//!   a model that does not fit fails the link, or the loader with
//!   [`wire::Status::TooLarge`]); [`device!`] declares them sized from the
//!   embedded model.
//! - Logging with `defmt` (the board picks the transport: `defmt-rtt`,
//!   `defmt-semihosting`).
//!
//! A board's `main`:
//!
//! ```ignore
//! akida_embedded::embedded_model!();
//! #[cortex_m_rt::entry]
//! fn main() -> ! {
//!     let mut device = akida_embedded::device!();
//!     device.self_test();
//!     // device.serve(&mut uart) with any embedded_io::{Read, Write} UART.
//!     loop { cortex_m::asm::wfi() }
//! }
//! ```
#![no_std]

pub mod io;
pub mod stack;

use akida_core::mfcc::{self, FeatureStream, CLIP_HOPS, HOP};
use akida_core::stream::{
    forward_stream, prepare_in_place, workspace_bytes, StreamLayer, StreamModel,
};
use akida_core::wire::{self, Command, Info, Status, HEADER_LEN, LABELS_MAX, TRAILER_LEN};
use akida_core::LayerOutput;
use embedded_io::{Read, ReadExactError, Write};

pub use akida_core;
pub use akida_core::wire as protocol;
pub use embedded_io;
pub use heapless;

/// Called before the first layer and after every layer of an inference
/// (`point` = layers done): the instruction-counting QEMU plugin records its
/// count whenever this function runs (`scripts/count_instructions.sh`).
#[no_mangle]
#[inline(never)]
pub extern "C" fn akida_mark(point: u32) {
    core::hint::black_box(point);
}

/// The `point` of the marks around each hop of the keyword front end (two
/// per hop, [`mfcc::CLIP_HOPS`] hops, before the model's marks).
pub const FRONT_END_MARK: u32 = u32::MAX;

/// A model embedded at build time: the prepared bytes and the layer
/// descriptions (postcard), as `akida-embedded-build` wrote them.
#[derive(Clone, Copy, Debug)]
pub struct Embedded {
    pub bytes: &'static [u8],
    pub layers: &'static [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Active {
    None,
    Embedded,
    /// A model of this many bytes in the arena.
    Loaded(usize),
}

/// How a session over a byte stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End<E> {
    /// The host sent [`Command::Quit`].
    Quit,
    /// The stream ended.
    Eof,
    /// The transport failed.
    Io(E),
}

impl<E> From<ReadExactError<E>> for End<E> {
    fn from(e: ReadExactError<E>) -> Self {
        match e {
            ReadExactError::UnexpectedEof => End::Eof,
            ReadExactError::Other(e) => End::Io(e),
        }
    }
}

/// The device: its static buffers, the embedded model if any, the active
/// model. `L` is the most layers a model may have.
pub struct Device<'a, const L: usize> {
    workspace: &'a mut [u64],
    input: &'a mut [u8],
    arena: &'a mut [u8],
    layers: &'a mut heapless::Vec<StreamLayer, L>,
    embedded: Option<Embedded>,
    active: Active,
    /// The class names of [`Command::Labels`], one per line.
    labels: heapless::Vec<u8, LABELS_MAX>,
}

/// The active model of a device, from its parts (cheap: ranges and sizes).
fn model_of<'m, const L: usize>(
    active: Active,
    embedded: Option<Embedded>,
    arena: &'m [u8],
    layers: &'m heapless::Vec<StreamLayer, L>,
) -> Option<StreamModel<'m>> {
    let bytes = match (active, embedded) {
        (Active::Embedded, Some(e)) => e.bytes,
        (Active::Loaded(n), _) => &arena[..n],
        _ => return None,
    };
    StreamModel::from_parts(bytes, layers).ok()
}

impl<'a, const L: usize> Device<'a, L> {
    /// A device over its buffers: the workspace (`u64` words), the input
    /// buffer, the loader arena (empty: no run-time loading) and the layer
    /// table. The embedded model, if any, is made active.
    pub fn new(
        workspace: &'a mut [u64],
        input: &'a mut [u8],
        arena: &'a mut [u8],
        layers: &'a mut heapless::Vec<StreamLayer, L>,
        embedded: Option<Embedded>,
    ) -> Self {
        let mut d = Device {
            workspace,
            input,
            arena,
            layers,
            embedded,
            active: Active::None,
            labels: heapless::Vec::new(),
        };
        if d.embedded.is_some() {
            if let Err(s) = d.use_embedded() {
                defmt::error!("embedded model refused: {}", s.message());
            }
        }
        d
    }

    /// The active model.
    pub fn model(&self) -> Option<StreamModel<'_>> {
        model_of(self.active, self.embedded, self.arena, self.layers)
    }

    /// Makes the embedded model active.
    pub fn use_embedded(&mut self) -> Result<Info, Status> {
        self.active = Active::None;
        let e = self.embedded.ok_or(Status::NoModel)?;
        // Layer by layer: a whole table on the stack would be large.
        self.layers.clear();
        let (count, mut rest) =
            postcard::take_from_bytes::<u32>(e.layers).map_err(|_| Status::Corrupt)?;
        for _ in 0..count {
            let (l, r) =
                postcard::take_from_bytes::<StreamLayer>(rest).map_err(|_| Status::Corrupt)?;
            self.layers.push(l).map_err(|_| Status::TooLarge)?;
            rest = r;
        }
        self.active = Active::Embedded;
        self.checked()
    }

    /// Prepares the `.akd` model that lies in the first `len` bytes of the
    /// arena and makes it active.
    pub fn load(&mut self, len: usize) -> Result<Info, Status> {
        self.active = Active::None;
        let tmp = workspace_bytes(self.workspace);
        match prepare_in_place(&mut self.arena[..len], self.layers, tmp) {
            Ok(_) => {
                self.active = Active::Loaded(len);
                self.checked()
            }
            Err(e) => {
                defmt::warn!("model refused: {}", wire::model_status(&e).message());
                Err(wire::model_status(&e))
            }
        }
    }

    /// The info of the new active model, refused if the workspace or the
    /// input buffer cannot hold what it needs.
    fn checked(&mut self) -> Result<Info, Status> {
        let info = self.info();
        let Some(m) = self.model() else {
            self.active = Active::None;
            return Err(Status::Invalid);
        };
        if m.sizes().words() > self.workspace.len() || m.input().len() > self.input.len() {
            defmt::warn!(
                "model needs {=usize} B of workspace and {=usize} B of input, the device has {=usize} and {=usize}",
                m.sizes().bytes(),
                m.input().len(),
                self.workspace.len() * 8,
                self.input.len()
            );
            self.active = Active::None;
            return Err(Status::TooLarge);
        }
        defmt::info!(
            "{=str} model: {=u32} layers ({=u32} on the M4 kernels), {=u32} B, workspace {=u32} B",
            if matches!(self.active, Active::Embedded) {
                "embedded"
            } else {
                "loaded"
            },
            info.layers,
            info.fast_layers,
            info.model_bytes,
            info.workspace_bytes
        );
        Ok(info)
    }

    /// What the device holds and needs.
    pub fn info(&self) -> Info {
        let (peak, size) = stack::usage();
        let mut i = Info {
            workspace_capacity: (self.workspace.len() * 8) as u32,
            arena_capacity: self.arena.len() as u32,
            stack_peak: peak as u32,
            stack_size: size as u32,
            ..Info::default()
        };
        if let Some(m) = self.model() {
            let s = m.sizes();
            i.layers = m.layers().len() as u32;
            i.fast_layers = m.layers().iter().filter(|l| l.fast).count() as u32;
            i.model_bytes = m.bytes().len() as u32;
            i.variable_bytes = m.variable_bytes() as u32;
            i.workspace_bytes = s.bytes() as u32;
            i.levels_a = s.levels[0] as u32;
            i.levels_b = s.levels[1] as u32;
            i.input_len = m.input().len() as u32;
            i.output_len = m.output().len() as u32;
            i.outputs_levels = m.outputs_levels() as u32;
        }
        i
    }

    /// Runs the active model on the first bytes of the input buffer.
    pub fn infer(&mut self) -> Result<LayerOutput<'_>, Status> {
        let model =
            model_of(self.active, self.embedded, self.arena, self.layers).ok_or(Status::NoModel)?;
        let n = model.input().len();
        forward_stream(&model, &self.input[..n], self.workspace, |p| {
            akida_mark(p as u32)
        })
        .map_err(|_| Status::TooLarge)
    }

    /// Reads one second of PCM (the payload of [`Command::Keyword`]) hop
    /// by hop, computing the model input as the hops arrive; whether the
    /// payload's checksum matched. The front end's work on each hop lies
    /// between two [`akida_mark`]s ([`FRONT_END_MARK`]), the transport's
    /// (reading, checksum) outside them.
    fn listen<IO: Read>(&mut self, io: &mut IO) -> Result<bool, End<IO::Error>> {
        let mut stream = FeatureStream::new();
        let mut bytes = [0u8; 2 * HOP];
        let mut hop = [0i16; HOP];
        let mut crc = wire::CRC.digest();
        // The whole payload is read whatever happens, to stay in step.
        let mut fits = true;
        for _ in 0..CLIP_HOPS {
            io.read_exact(&mut bytes)?;
            crc.update(&bytes);
            akida_mark(FRONT_END_MARK);
            for (s, b) in hop.iter_mut().zip(bytes.chunks_exact(2)) {
                *s = i16::from_le_bytes([b[0], b[1]]);
            }
            // (`checked` refuses a model whose input the buffer cannot hold.)
            fits &= self.push_hop(&mut stream, &hop).is_ok();
            akida_mark(FRONT_END_MARK);
        }
        let mut trailer = [0u8; TRAILER_LEN];
        io.read_exact(&mut trailer)?;
        Ok(fits && crc.finalize().to_le_bytes() == trailer)
    }

    /// Serves [`Command::Keyword`] once the payload is known to fit:
    /// front end, model, log of the top class, reply (the features, then
    /// the output).
    fn keyword<IO: Read + Write>(&mut self, io: &mut IO) -> Result<(), End<IO::Error>> {
        stack::repaint();
        if !self.listen(io)? {
            return reply(io, Status::FrameCrc, [0; 3], &[]);
        }
        let Some(model) = model_of(self.active, self.embedded, self.arena, self.layers) else {
            return reply(io, Status::NoModel, [0; 3], &[]);
        };
        let input = &self.input[..model.input().len()];
        let Ok(output) = forward_stream(&model, input, self.workspace, |p| akida_mark(p as u32))
        else {
            return reply(io, Status::TooLarge, [0; 3], &[]);
        };
        let (class, score) = top_class(&output);
        match label(&self.labels, class) {
            Some(l) => defmt::info!(
                "keyword: {=str} (class {=usize}), score {=i32}",
                l,
                class,
                score
            ),
            None => defmt::info!("keyword: class {=usize}, score {=i32}", class, score),
        }
        let [lo, hi] = (input.len() as u16).to_le_bytes();
        match output {
            LayerOutput::Levels(l) => reply(io, Status::Ok, [0, lo, hi], &[input, l]),
            LayerOutput::Potentials(p) => reply_i32(io, [1, lo, hi], input, p),
        }
    }

    /// Feeds one hop of audio (20 ms at 16 kHz) to the keyword front end:
    /// when it completes a frame, that frame's row of the model input is
    /// written into the input buffer (its index is returned). After the
    /// last hop of a clip ([`FeatureStream::is_complete`]), [`Self::classify`]
    /// runs the model on it. What a board with a microphone calls.
    pub fn push_hop(
        &mut self,
        stream: &mut FeatureStream,
        hop: &[i16; HOP],
    ) -> Result<Option<usize>, Status> {
        let input = <&mut [u8; mfcc::INPUT_LEN]>::try_from(&mut self.input[..mfcc::INPUT_LEN])
            .map_err(|_| Status::InputLength)?;
        Ok(stream.push_hop(hop, input))
    }

    /// Runs the active model on the input buffer and returns the top class
    /// and its score (potential, or level); logs it with its name when the
    /// class names are known.
    pub fn classify(&mut self) -> Result<(usize, i32), Status> {
        let (class, score) = top_class(&self.infer()?);
        log_keyword(&self.labels, class, score);
        Ok((class, score))
    }

    /// Sets the class names (one per line) that [`Self::classify`] logs.
    pub fn set_class_names(&mut self, names: &str) -> Result<(), Status> {
        match self.set_labels(names.as_bytes()) {
            Status::Ok => Ok(()),
            s => Err(s),
        }
    }

    /// Keeps the class names of [`Command::Labels`].
    fn set_labels(&mut self, names: &[u8]) -> Status {
        self.labels.clear();
        if core::str::from_utf8(names).is_err() || self.labels.extend_from_slice(names).is_err() {
            return Status::InputLength;
        }
        Status::Ok
    }

    /// The input buffer (write an input here, then [`Self::infer`]).
    pub fn input_mut(&mut self) -> &mut [u8] {
        self.input
    }

    /// Runs the active model on an all-zero input and logs the output.
    pub fn self_test(&mut self) {
        self.input.fill(0);
        match self.infer() {
            Ok(LayerOutput::Levels(l)) => defmt::info!("self-test: levels {=[u8]}", l),
            Ok(LayerOutput::Potentials(p)) => defmt::info!("self-test: potentials {}", p),
            Err(s) => defmt::error!("self-test: {}", s.message()),
        }
    }

    /// Serves the host's commands over a byte stream until [`Command::Quit`]
    /// or the end of the stream. Each frame gets one reply; a damaged header
    /// gets [`Status::BadFrame`] and the device looks for the next frame.
    pub fn serve<IO: Read + Write>(&mut self, io: &mut IO) -> End<IO::Error> {
        match self.session(io) {
            Ok(()) => End::Quit,
            Err(e) => e,
        }
    }

    fn session<IO: Read + Write>(&mut self, io: &mut IO) -> Result<(), End<IO::Error>> {
        let mut h = [0u8; HEADER_LEN];
        io.read_exact(&mut h)?;
        loop {
            let (tag, len) = match wire::parse_header(&h) {
                Ok(x) => x,
                Err(status) => {
                    reply(io, status, [0; 3], &[])?;
                    resync(io, &mut h)?
                }
            };
            let len = len as usize;
            match Command::of(tag) {
                Some(Command::Quit) => {
                    drain(io, len)?;
                    reply(io, Status::Ok, [0; 3], &[])?;
                    return Ok(());
                }
                Some(Command::Load) if len > self.arena.len() => {
                    self.active = Active::None;
                    drain(io, len)?;
                    reply(io, Status::TooLarge, [0; 3], &[])?;
                }
                Some(Command::Load) => {
                    self.active = Active::None;
                    let r = match read_checked(io, &mut self.arena[..len])? {
                        false => Err(Status::FrameCrc),
                        true => self.load(len),
                    };
                    reply_info(io, r)?;
                }
                Some(Command::Embedded) => {
                    drain(io, len)?;
                    let r = self.use_embedded();
                    reply_info(io, r)?;
                }
                Some(Command::Info) => {
                    drain(io, len)?;
                    reply(io, Status::Ok, [0; 3], &[&self.info().encode()])?;
                }
                Some(Command::Ping) if len <= 64 => {
                    let mut buf = [0u8; 64];
                    match read_checked(io, &mut buf[..len])? {
                        true => reply(io, Status::Ok, [0; 3], &[&buf[..len]])?,
                        false => reply(io, Status::FrameCrc, [0; 3], &[])?,
                    }
                }
                Some(Command::Labels) if len <= LABELS_MAX => {
                    let mut buf = [0u8; LABELS_MAX];
                    match read_checked(io, &mut buf[..len])? {
                        true => reply(io, self.set_labels(&buf[..len]), [0; 3], &[])?,
                        false => reply(io, Status::FrameCrc, [0; 3], &[])?,
                    }
                }
                Some(Command::Labels) => {
                    drain(io, len)?;
                    reply(io, Status::InputLength, [0; 3], &[])?;
                }
                Some(Command::Keyword) => match self.model().map(|m| m.input().len()) {
                    None => {
                        drain(io, len)?;
                        reply(io, Status::NoModel, [0; 3], &[])?;
                    }
                    Some(n) if n != mfcc::INPUT_LEN || len != 2 * mfcc::CLIP_SAMPLES => {
                        drain(io, len)?;
                        reply(io, Status::InputLength, [0; 3], &[])?;
                    }
                    Some(_) => self.keyword(io)?,
                },
                Some(Command::Infer) => {
                    let expected = self.model().map(|m| m.input().len());
                    match expected {
                        None => {
                            drain(io, len)?;
                            reply(io, Status::NoModel, [0; 3], &[])?;
                        }
                        Some(n) if n != len => {
                            drain(io, len)?;
                            reply(io, Status::InputLength, [0; 3], &[])?;
                        }
                        Some(n) => {
                            if !read_checked(io, &mut self.input[..n])? {
                                reply(io, Status::FrameCrc, [0; 3], &[])?;
                            } else {
                                stack::repaint();
                                match self.infer() {
                                    Ok(LayerOutput::Levels(l)) => {
                                        reply(io, Status::Ok, [0; 3], &[l])?
                                    }
                                    Ok(LayerOutput::Potentials(p)) => {
                                        reply_i32(io, [1, 0, 0], &[], p)?
                                    }
                                    Err(s) => reply(io, s, [0; 3], &[])?,
                                }
                            }
                        }
                    }
                }
                _ => {
                    drain(io, len)?;
                    reply(io, Status::UnknownCommand, [0; 3], &[])?;
                }
            }
            io.flush().map_err(End::Io)?;
            io.read_exact(&mut h)?;
        }
    }
}

/// The top class of an output and its value (the first of equal ones).
fn top_class(output: &LayerOutput<'_>) -> (usize, i32) {
    let mut best = (0, i32::MIN);
    let mut consider = |i: usize, v: i32| {
        if v > best.1 {
            best = (i, v);
        }
    };
    match output {
        LayerOutput::Levels(l) => l
            .iter()
            .enumerate()
            .for_each(|(i, &v)| consider(i, v as i32)),
        LayerOutput::Potentials(p) => p.iter().enumerate().for_each(|(i, &v)| consider(i, v)),
    }
    best
}

/// Logs the top class, with its name when there is one.
fn log_keyword(labels: &[u8], class: usize, score: i32) {
    match label(labels, class) {
        Some(l) => defmt::info!(
            "keyword: {=str} (class {=usize}), score {=i32}",
            l,
            class,
            score
        ),
        None => defmt::info!("keyword: class {=usize}, score {=i32}", class, score),
    }
}

/// Line `class` of the class names, if there is one.
fn label(labels: &[u8], class: usize) -> Option<&str> {
    let text = core::str::from_utf8(labels).ok()?;
    text.split('\n').nth(class).filter(|l| !l.is_empty())
}

/// Slides over the stream one byte at a time until a valid header.
fn resync<IO: Read>(io: &mut IO, h: &mut [u8; HEADER_LEN]) -> Result<(u8, u32), End<IO::Error>> {
    loop {
        h.copy_within(1.., 0);
        io.read_exact(&mut h[HEADER_LEN - 1..])?;
        if let Ok(x) = wire::parse_header(h) {
            return Ok(x);
        }
    }
}

/// Reads a payload into `buf` and its checksum; whether they match.
fn read_checked<IO: Read>(io: &mut IO, buf: &mut [u8]) -> Result<bool, End<IO::Error>> {
    io.read_exact(buf)?;
    let mut crc = [0u8; TRAILER_LEN];
    io.read_exact(&mut crc)?;
    Ok(wire::CRC.checksum(buf).to_le_bytes() == crc)
}

/// Skips a payload and its checksum.
fn drain<IO: Read>(io: &mut IO, len: usize) -> Result<(), End<IO::Error>> {
    let mut left = len + TRAILER_LEN;
    let mut buf = [0u8; 64];
    while left > 0 {
        let n = left.min(buf.len());
        io.read_exact(&mut buf[..n])?;
        left -= n;
    }
    Ok(())
}

fn reply_info<IO: Write>(io: &mut IO, r: Result<Info, Status>) -> Result<(), End<IO::Error>> {
    match r {
        Ok(info) => reply(io, Status::Ok, [0; 3], &[&info.encode()]),
        Err(s) => reply(io, s, [0; 3], &[]),
    }
}

/// Writes a reply frame: status, detail, then the parts.
fn reply<IO: Write>(
    io: &mut IO,
    status: Status,
    detail: [u8; 3],
    parts: &[&[u8]],
) -> Result<(), End<IO::Error>> {
    let head = [status as u8, detail[0], detail[1], detail[2]];
    let len = 4 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut crc = wire::CRC.digest();
    crc.update(&head);
    io.write_all(&wire::header(wire::REPLY, len as u32))
        .map_err(End::Io)?;
    io.write_all(&head).map_err(End::Io)?;
    for p in parts {
        crc.update(p);
        io.write_all(p).map_err(End::Io)?;
    }
    io.write_all(&crc.finalize().to_le_bytes()).map_err(End::Io)
}

/// A reply holding `prefix`, then int32 potentials (little-endian, written
/// in chunks).
fn reply_i32<IO: Write>(
    io: &mut IO,
    detail: [u8; 3],
    prefix: &[u8],
    p: &[i32],
) -> Result<(), End<IO::Error>> {
    let head = [Status::Ok as u8, detail[0], detail[1], detail[2]];
    let mut crc = wire::CRC.digest();
    crc.update(&head);
    crc.update(prefix);
    io.write_all(&wire::header(
        wire::REPLY,
        (4 + prefix.len() + 4 * p.len()) as u32,
    ))
    .map_err(End::Io)?;
    io.write_all(&head).map_err(End::Io)?;
    io.write_all(prefix).map_err(End::Io)?;
    let mut buf = [0u8; 256];
    for chunk in p.chunks(64) {
        let bytes = &mut buf[..4 * chunk.len()];
        for (b, v) in bytes.chunks_exact_mut(4).zip(chunk) {
            b.copy_from_slice(&v.to_le_bytes());
        }
        crc.update(bytes);
        io.write_all(bytes).map_err(End::Io)?;
    }
    io.write_all(&crc.finalize().to_le_bytes()).map_err(End::Io)
}

/// Includes the model `akida-embedded-build` embedded (`$OUT_DIR/akida_model.rs`)
/// as a module `akida_model`.
#[macro_export]
macro_rules! embedded_model {
    () => {
        #[allow(dead_code)]
        mod akida_model {
            include!(concat!(env!("OUT_DIR"), "/akida_model.rs"));
        }
    };
}

/// A [`Device`] over static buffers sized from the embedded model (after
/// [`embedded_model!`]): the workspace, the input buffer, the layer table;
/// no loader arena. Call once.
#[macro_export]
macro_rules! device {
    () => {{
        static mut WORKSPACE: [u64; akida_model::WORKSPACE_WORDS] =
            [0; akida_model::WORKSPACE_WORDS];
        static mut INPUT: [u8; akida_model::INPUT_LEN] = [0; akida_model::INPUT_LEN];
        static mut LAYERS: $crate::heapless::Vec<
            $crate::akida_core::stream::StreamLayer,
            { akida_model::LAYER_COUNT },
        > = $crate::heapless::Vec::new();
        // SAFETY: the macro is called once, so each static is borrowed once.
        let (workspace, input, layers) = unsafe {
            (
                &mut *core::ptr::addr_of_mut!(WORKSPACE),
                &mut *core::ptr::addr_of_mut!(INPUT),
                &mut *core::ptr::addr_of_mut!(LAYERS),
            )
        };
        $crate::Device::new(
            workspace,
            input,
            &mut [],
            layers,
            Some($crate::Embedded {
                bytes: &akida_model::BYTES,
                layers: &akida_model::LAYERS,
            }),
        )
    }};
}
