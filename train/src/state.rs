//! The resumable state of a run, saved beside the model after every epoch
//! (`M.h5` -> `M_state.bin`): epochs done, Adam's step count and moments,
//! the random generator, the early-stopping bookkeeping and best weights,
//! and a fingerprint of the weights it belongs to, so that `--resume`
//! refuses a state saved with other weights.
//!
//! Layout: `AKTRAIN1`, a little-endian u32 length and a JSON header, then
//! little-endian float32 arrays (Adam's `m` and `v` per parameter, then the
//! best parameters and moving statistics when kept).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::net::Network;
use crate::optim::{Adam, AdamConfig};
use crate::rng::Rng;

const MAGIC: &[u8; 8] = b"AKTRAIN1";

/// Why a state cannot be saved or resumed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// The state file of a run saving to `model`.
pub fn state_path(model: &Path) -> PathBuf {
    crate::fit::companion(model, "_state.bin")
}

#[derive(Serialize, Deserialize)]
struct Header {
    epoch: usize,
    iterations: u64,
    rng: [u64; 4],
    best_val_loss: Option<f32>,
    bad_epochs: usize,
    fingerprint: u64,
    sizes: Vec<usize>,
    moving: Vec<usize>,
    has_best: bool,
}

/// Best weights kept for early stopping: parameters, then moving (mean,
/// variance) pairs.
pub type Best = (Vec<Vec<f32>>, Vec<(Vec<f32>, Vec<f32>)>);

/// A run's state.
#[derive(Clone, Debug)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    pub adam: Adam,
    pub rng: Rng,
    pub best_val_loss: Option<f32>,
    pub bad_epochs: usize,
    pub best: Option<Best>,
}

/// FNV-1a over the bits of every weight (parameters and moving statistics).
fn fingerprint(net: &Network) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: &[f32]| {
        for x in v {
            for b in x.to_bits().to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
    };
    for p in &net.params {
        eat(&p.values);
    }
    for m in &net.moving {
        eat(&m.mean);
        eat(&m.var);
    }
    h
}

impl TrainState {
    pub fn new(adam: Adam, rng: Rng) -> TrainState {
        TrainState {
            epoch: 0,
            adam,
            rng,
            best_val_loss: None,
            bad_epochs: 0,
            best: None,
        }
    }

    /// Puts the best weights back into `net`.
    pub fn restore_best(&self, net: &mut Network) {
        if let Some((params, moving)) = &self.best {
            for (p, v) in net.params.iter_mut().zip(params) {
                p.values.clone_from(v);
            }
            for (m, (mean, var)) in net.moving.iter_mut().zip(moving) {
                m.mean.clone_from(mean);
                m.var.clone_from(var);
            }
        }
    }

    /// Saves the state of a run whose model (`net`) was saved to `model`.
    pub fn save(&self, model: &Path, net: &Network) -> Result<(), StateError> {
        let path = state_path(model);
        let header = Header {
            epoch: self.epoch,
            iterations: self.adam.iterations,
            rng: self.rng.state(),
            best_val_loss: self.best_val_loss,
            bad_epochs: self.bad_epochs,
            fingerprint: fingerprint(net),
            sizes: net.params.iter().map(|p| p.values.len()).collect(),
            moving: net.moving.iter().map(|m| m.mean.len()).collect(),
            has_best: self.best.is_some(),
        };
        let json = serde_json::to_vec(&header).expect("the header serializes");
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&json);
        let mut put = |v: &[f32]| {
            for x in v {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        };
        for m in &self.adam.m {
            put(m);
        }
        for v in &self.adam.v {
            put(v);
        }
        if let Some((params, moving)) = &self.best {
            for p in params {
                put(p);
            }
            for (mean, var) in moving {
                put(mean);
                put(var);
            }
        }
        akida_host::fsutil::atomic_write(&path, &bytes)
            .map_err(|source| StateError::Io { path, source })
    }

    /// Loads the state saved beside `model` for the network read from it.
    pub fn load(model: &Path, net: &Network) -> Result<TrainState, StateError> {
        let path = state_path(model);
        let invalid = |message: &str| StateError::Invalid {
            path: path.clone(),
            message: message.into(),
        };
        let bytes = std::fs::read(&path).map_err(|source| StateError::Io {
            path: path.clone(),
            source,
        })?;
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(invalid("not a training state (bad magic)"));
        }
        let len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        let json = bytes
            .get(12..12 + len)
            .ok_or_else(|| invalid("truncated header"))?;
        let header: Header =
            serde_json::from_slice(json).map_err(|e| invalid(&format!("header: {e}")))?;
        let sizes: Vec<usize> = net.params.iter().map(|p| p.values.len()).collect();
        let moving: Vec<usize> = net.moving.iter().map(|m| m.mean.len()).collect();
        if header.sizes != sizes || header.moving != moving {
            return Err(invalid("saved for a model of another architecture"));
        }
        if header.fingerprint != fingerprint(net) {
            return Err(invalid(&format!(
                "saved with other weights than those of {} (resume from the model that run saved)",
                model.display()
            )));
        }
        let mut at = 12 + len;
        let mut take = |n: usize| -> Result<Vec<f32>, StateError> {
            let end = at + 4 * n;
            let chunk = bytes
                .get(at..end)
                .ok_or_else(|| invalid("truncated arrays"))?;
            at = end;
            Ok(chunk
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let mut adam = Adam::new(AdamConfig::default(), &sizes);
        adam.iterations = header.iterations;
        for (i, &n) in sizes.iter().enumerate() {
            adam.m[i] = take(n)?;
        }
        for (i, &n) in sizes.iter().enumerate() {
            adam.v[i] = take(n)?;
        }
        let best = if header.has_best {
            let params = sizes
                .iter()
                .map(|&n| take(n))
                .collect::<Result<Vec<_>, _>>()?;
            let mut pairs = Vec::new();
            for &n in &moving {
                pairs.push((take(n)?, take(n)?));
            }
            Some((params, pairs))
        } else {
            None
        };
        Ok(TrainState {
            epoch: header.epoch,
            adam,
            rng: Rng::from_state(header.rng),
            best_val_loss: header.best_val_loss,
            bad_epochs: header.bad_epochs,
            best,
        })
    }
}
