//! One image on several cores: a large layer's output rows split in bands
//! ([`inference::run_layer_band`]), the calling thread running the first
//! and a crew of helper threads the others.
//!
//! The helpers spin while they wait for a band (`std::hint::spin_loop`):
//! a thread that sleeps between layers takes tens of microseconds to wake
//! on a virtual machine, as long as a whole `ds_cnn_kws` layer (handing the
//! bands to rayon's sleeping workers made single images slower, not
//! faster). The input levels a band reads ([`tail::band_input`]) are
//! copied to its helper and its output copied back, so that no buffer is
//! shared while a layer runs.

use akida_core::inference::{self, LayerBuffers, LayerOutputMut};
use akida_core::kernels::{Backend, Prepared};
use akida_core::tail;
use akida_core::{ForwardError, ValidLayer};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The buffers one band of a layer computes in (a layer's sizes).
pub(super) struct BandBuffers {
    pub scratch: Vec<i32>,
    pub a: Vec<i16>,
    pub row: Vec<i32>,
}

/// A band handed to a helper, and what it gives back.
struct Job {
    layer: usize,
    rows: Range<usize>,
    /// The layer's input levels (a copy).
    input: Vec<u8>,
    /// The band's output levels.
    out: Vec<u8>,
    result: Result<(), ForwardError>,
    buffers: BandBuffers,
}

/// One helper's mailbox: the leader bumps `posted` to hand over the job,
/// the helper stores the same number in `done` when it has finished.
struct Slot {
    posted: AtomicU64,
    done: AtomicU64,
    job: Mutex<Job>,
}

/// `posted` value that ends a helper.
const END: u64 = u64::MAX;

/// The helpers of one run (see the module documentation), living inside a
/// `std::thread::scope`.
pub(super) struct Crew {
    slots: Vec<Slot>,
    generation: AtomicU64,
}

impl Crew {
    /// A crew of `helpers` mailboxes, each with buffers of `make()`.
    pub fn new(helpers: usize, make: impl Fn() -> BandBuffers) -> Crew {
        Crew {
            slots: (0..helpers)
                .map(|_| Slot {
                    posted: AtomicU64::new(0),
                    done: AtomicU64::new(0),
                    job: Mutex::new(Job {
                        layer: 0,
                        rows: 0..0,
                        input: Vec::new(),
                        out: Vec::new(),
                        result: Ok(()),
                        buffers: make(),
                    }),
                })
                .collect(),
            generation: AtomicU64::new(0),
        }
    }

    /// Bands a layer splits into: the leader's and one per helper.
    pub fn bands(&self) -> usize {
        1 + self.slots.len()
    }

    /// Helper `h`'s loop: waits (spinning) for a band, runs layer `layer`
    /// of `layers` with `prepare(layer)`'s fast operands, until ended.
    pub fn serve<'p>(
        &self,
        h: usize,
        layers: &[ValidLayer],
        prepare: impl Fn(usize) -> Prepared<'p>,
    ) {
        let slot = &self.slots[h];
        let mut seen = 0;
        loop {
            let posted = spin_until(|| {
                let p = slot.posted.load(Ordering::Acquire);
                (p != seen).then_some(p)
            });
            if posted == END {
                return;
            }
            seen = posted;
            {
                let mut job = slot.job.lock().expect("a band's mailbox");
                let Job {
                    layer,
                    rows,
                    input,
                    out,
                    result,
                    buffers,
                } = &mut *job;
                let prepared = prepare(*layer);
                let buffers = LayerBuffers {
                    scratch: &mut buffers.scratch,
                    a: &mut buffers.a,
                    row: &mut buffers.row,
                };
                *result = inference::run_layer_band(
                    &layers[*layer],
                    &prepared,
                    input,
                    rows.clone(),
                    buffers,
                    LayerOutputMut::Levels(out),
                );
            }
            slot.done.store(posted, Ordering::Release);
        }
    }

    /// Ends every helper's loop.
    pub fn end(&self) {
        for slot in &self.slots {
            slot.posted.store(END, Ordering::Release);
        }
    }

    /// Runs layer `index` (`layer`, with the fast kernel: `prepared`) on
    /// `input` into `levels` as bands of its output rows: the first here
    /// in `buffers`, the others on the helpers.
    pub fn run(
        &self,
        index: usize,
        layer: &ValidLayer,
        prepared: &Prepared,
        input: &[u8],
        buffers: LayerBuffers,
        levels: &mut [u8],
    ) -> Result<(), ForwardError> {
        debug_assert!(matches!(prepared.backend, Backend::Fast(_)));
        let rows = layer.shapes.output.rows as usize;
        let count = self.bands().min(rows);
        let per_row = layer.shapes.output.cols as usize * layer.params().filters as usize;
        let band = |b: usize| b * rows / count..(b + 1) * rows / count;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        for (h, slot) in self.slots.iter().enumerate().take(count - 1) {
            let rows = band(h + 1);
            {
                let mut job = slot.job.lock().expect("a band's mailbox");
                // Only the input bytes the band reads are copied (the rest
                // of the helper's copy is stale and never read), and the
                // band overwrites all of its output.
                let read = tail::band_cells(layer, rows.clone())
                    .map_or(0..input.len(), |cells| tail::band_input(layer, cells));
                job.layer = index;
                job.out.resize(rows.len() * per_row, 0);
                job.rows = rows;
                job.input.resize(input.len(), 0);
                job.input[read.clone()].copy_from_slice(&input[read]);
            }
            slot.posted.store(generation, Ordering::Release);
        }
        let first = band(0);
        let (mine, rest) = levels.split_at_mut(first.len() * per_row);
        let ran = inference::run_layer_band(
            layer,
            prepared,
            input,
            first,
            buffers,
            LayerOutputMut::Levels(mine),
        );
        // Every helper's band, in order, whatever the leader's result (a
        // helper must not keep a job when the next one comes).
        let mut rest = rest;
        let mut results = vec![ran];
        for slot in self.slots.iter().take(count - 1) {
            spin_until(|| (slot.done.load(Ordering::Acquire) == generation).then_some(()));
            let mut job = slot.job.lock().expect("a band's mailbox");
            let (part, tail) = rest.split_at_mut(job.out.len());
            part.copy_from_slice(&job.out);
            rest = tail;
            results.push(std::mem::replace(&mut job.result, Ok(())));
        }
        results.into_iter().collect()
    }
}

/// Spins until `ready` gives a value.
fn spin_until<T>(mut ready: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(v) = ready() {
            return v;
        }
        std::hint::spin_loop();
    }
}
