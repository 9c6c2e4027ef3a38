//! The three datasets as the trainer sees them: a training source that
//! yields a freshly augmented set each epoch, and fixed validation and test
//! sets of uint8 inputs with their targets.
//!
//! Augmentation, per dataset:
//! - CIFAR-10: random horizontal flip and a random shift of up to 3 pixels
//!   each way (Keras `ImageDataGenerator(width_shift_range=0.1,
//!   height_shift_range=0.1, horizontal_flip=True)`, edges repeated as its
//!   `fill_mode="nearest"` does);
//! - UTKFace: random horizontal flip;
//! - Speech Commands: TensorFlow's speech-commands recipe, a time shift of
//!   up to 100 ms each way and, with probability 0.8, background noise at a
//!   volume drawn from `[0, 0.1)`, before the MFCC front end.

use akida_core::mfcc::CLIP_SAMPLES;
use akida_host::datasets::speech_commands::{self, SpeechCommands};
use akida_host::datasets::{ImageSet, Targets};
use rayon::prelude::*;

use crate::rng::Rng;

/// How training inputs are augmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageAugment {
    None,
    /// Horizontal flip.
    Flip,
    /// Horizontal flip and a shift of up to this many pixels.
    FlipShift(usize),
}

/// Where training inputs come from.
#[derive(Clone, Debug)]
pub enum TrainSource {
    Images(ImageSet, ImageAugment),
    Audio(SpeechCommands),
}

/// Speech Commands augmentation constants (TensorFlow's defaults).
pub const TIME_SHIFT: isize = 1600;
pub const NOISE_PROBABILITY: f32 = 0.8;
pub const NOISE_VOLUME: f32 = 0.1;

impl TrainSource {
    pub fn len(&self) -> usize {
        match self {
            TrainSource::Images(s, _) => s.len(),
            TrainSource::Audio(a) => a.clips.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The training set of one epoch, augmented with draws from `rng`.
    pub fn epoch(&self, rng: &mut Rng) -> ImageSet {
        match self {
            TrainSource::Images(set, ImageAugment::None) => set.clone(),
            TrainSource::Images(set, augment) => {
                let seeds: Vec<u64> = (0..set.len()).map(|_| rng.next_u64()).collect();
                let len = set.image_len();
                let mut images = vec![0u8; set.images.len()];
                images
                    .par_chunks_mut(len)
                    .zip(set.images.par_chunks(len))
                    .zip(seeds.par_iter())
                    .for_each(|((out, img), &seed)| {
                        let mut r = Rng::new(seed);
                        augment_image(img, set.shape, *augment, &mut r, out)
                    });
                ImageSet {
                    shape: set.shape,
                    images,
                    targets: set.targets.clone(),
                }
            }
            TrainSource::Audio(audio) => {
                let clips: Vec<[i16; CLIP_SAMPLES]> = audio
                    .clips
                    .iter()
                    .map(|clip| {
                        let shift = rng.range(-TIME_SHIFT, TIME_SHIFT);
                        let noise = if !audio.noise.is_empty() && rng.next_f32() < NOISE_PROBABILITY
                        {
                            let rec = &audio.noise[rng.below(audio.noise.len())];
                            let start = rng.below(rec.len() - CLIP_SAMPLES + 1);
                            Some((
                                &rec[start..start + CLIP_SAMPLES],
                                rng.next_f32() * NOISE_VOLUME,
                            ))
                        } else {
                            None
                        };
                        speech_commands::augment(&clip.pcm, shift, noise)
                    })
                    .collect();
                let refs: Vec<&[i16; CLIP_SAMPLES]> = clips.iter().collect();
                audio.with_pcm(&refs)
            }
        }
    }
}

/// One augmented image (HWC).
fn augment_image(
    img: &[u8],
    [h, w, c]: [usize; 3],
    augment: ImageAugment,
    rng: &mut Rng,
    out: &mut [u8],
) {
    let flip = rng.next_f32() < 0.5;
    let (dy, dx) = match augment {
        ImageAugment::FlipShift(s) => {
            let s = s as isize;
            (rng.range(-s, s), rng.range(-s, s))
        }
        _ => (0, 0),
    };
    for y in 0..h {
        let sy = (y as isize - dy).clamp(0, h as isize - 1) as usize;
        for x in 0..w {
            let fx = if flip { w - 1 - x } else { x };
            let sx = (fx as isize - dx).clamp(0, w as isize - 1) as usize;
            out[(y * w + x) * c..][..c].copy_from_slice(&img[(sy * w + sx) * c..][..c]);
        }
    }
}

/// What is predicted: classes (cross-entropy, accuracy) or a value (mean
/// absolute error loss and metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Classification,
    Regression,
}

impl Task {
    pub fn of(targets: &Targets) -> Task {
        match targets {
            Targets::Classes { .. } => Task::Classification,
            Targets::Values(_) => Task::Regression,
        }
    }

    /// The metric's name in logs.
    pub fn metric(self) -> &'static str {
        match self {
            Task::Classification => "accuracy",
            Task::Regression => "mae",
        }
    }

    /// Whether a larger metric is better.
    pub fn higher_is_better(self) -> bool {
        self == Task::Classification
    }
}

/// Training, validation and test data.
#[derive(Clone, Debug)]
pub struct Data {
    pub train: TrainSource,
    pub validation: ImageSet,
    pub test: ImageSet,
}

impl Data {
    pub fn task(&self) -> Task {
        Task::of(&self.test.targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_and_shifts_keep_pixels() {
        // 2x3 image, one channel: 0 1 2 / 3 4 5.
        let img = [0u8, 1, 2, 3, 4, 5];
        let mut out = [0u8; 6];
        // Find a draw that flips without shifting.
        for seed in 0..64 {
            let mut r = Rng::new(seed);
            augment_image(&img, [2, 3, 1], ImageAugment::Flip, &mut r, &mut out);
            if out[0] == 2 {
                assert_eq!(out, [2, 1, 0, 5, 4, 3]);
                break;
            }
            assert_eq!(out, img);
        }
        // Shifts repeat the edge.
        for seed in 0..64 {
            let mut r = Rng::new(seed);
            augment_image(
                &img,
                [2, 3, 1],
                ImageAugment::FlipShift(1),
                &mut r,
                &mut out,
            );
            assert!(out.iter().all(|v| img.contains(v)));
        }
    }
}
