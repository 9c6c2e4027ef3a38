//! The cnn2snn fixtures of `tests/data/cnn2snn/`: small Keras models with
//! what BrainChip's tools made of them (`scripts/diff_cnn2snn.py
//! --write-fixtures`, see the directory's README): the float model
//! (`float.h5`), cnn2snn's quantized model (`q.h5`), and either cnn2snn's
//! conversion (`engine.fbz`) with the engine's outputs on random inputs
//! (`io.npz`), or the reason cnn2snn refused it (`fixture.json`).

use std::path::{Path, PathBuf};

use akida_host::cnn2snn::{self, Cnn2snnError, ConvertOptions, QuantizeOptions};
use akida_host::formats::akd::ConvertedModel;
use akida_host::formats::npy::{Npz, Tensor};
use akida_host::keras;
use serde_json::Value;

use crate::data_dir;

/// One fixture directory.
pub struct Fixture {
    pub name: String,
    pub dir: PathBuf,
    /// `fixture.json`: the spec, the bits (`iq`, `wq`, `aq`), `refused`.
    pub meta: Value,
}

/// Every fixture, sorted by name.
pub fn fixtures() -> Vec<Fixture> {
    let root = data_dir().join("cnn2snn");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("fixture.json").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixture in {}", root.display());
    dirs.into_iter().map(|d| Fixture::open(&d)).collect()
}

/// The fixture `name`.
pub fn fixture(name: &str) -> Fixture {
    Fixture::open(&data_dir().join("cnn2snn").join(name))
}

impl Fixture {
    pub fn open(dir: &Path) -> Fixture {
        let path = dir.join("fixture.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Fixture {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            dir: dir.to_owned(),
            meta: serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        }
    }

    /// What cnn2snn said when it refused the model, if it did.
    pub fn refused(&self) -> Option<&str> {
        self.meta["refused"].as_str()
    }

    fn bits(&self, key: &str) -> u32 {
        self.meta[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no `{key}`", self.name)) as u32
    }

    /// Our quantize options: cnn2snn's `-iq`, `-wq`, `-aq`.
    pub fn quantize_options(&self) -> QuantizeOptions {
        QuantizeOptions {
            input_weight_bits: Some(self.bits("iq")),
            ..QuantizeOptions::new(self.bits("wq"), self.bits("aq"))
        }
    }

    fn keras(&self, file: &str) -> keras::Model {
        let path = self.dir.join(file);
        keras::read_model(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Path A: our quantize of `float.h5`, then our convert.
    pub fn ours_from_float(&self) -> Result<cnn2snn::Conversion, Cnn2snnError> {
        let q = cnn2snn::quantize(&self.keras("float.h5"), &self.quantize_options())?;
        cnn2snn::convert(&q, &ConvertOptions::default())
    }

    /// Path B: our convert of cnn2snn's `q.h5`.
    pub fn ours_from_quantized(&self) -> Result<cnn2snn::Conversion, Cnn2snnError> {
        cnn2snn::convert(&self.keras("q.h5"), &ConvertOptions::default())
    }

    /// cnn2snn's conversion, read from `engine.fbz`.
    pub fn engine_model(&self) -> ConvertedModel {
        let path = self.dir.join("engine.fbz");
        akida_host::formats::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// An array of `io.npz` (`inputs`, `forward`, `predict`), if present.
    pub fn io(&self, key: &str) -> Option<Tensor> {
        let path = self.dir.join("io.npz");
        let mut npz = Npz::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        npz.get(key)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// Asserts that two converted models hold the same layers (kinds, params,
/// weights, thresholds, act_steps as float32 bit patterns) behind the same
/// InputData layer (size and bits); names may differ (cnn2snn names the
/// InputData layer after a model its transforms make). Returns the number
/// of variable elements compared.
pub fn assert_same_model(what: &str, ours: &ConvertedModel, engine: &ConvertedModel) -> usize {
    let input = |m: &ConvertedModel| m.input_data().map(|d| (d.dims, d.bits));
    assert_eq!(input(ours), input(engine), "{what}: InputData");
    assert_eq!(ours.len(), engine.len(), "{what}: layer count");
    let mut elements = 0;
    for (a, b) in ours.layers().zip(engine.layers()) {
        let (a, b) = (a.layer, b.layer);
        let layer = format!("{what}: layer `{}`", b.name);
        assert_eq!(a.params, b.params, "{layer}: params");
        let wa: Vec<i8> = a.weights().values().collect();
        let wb: Vec<i8> = b.weights().values().collect();
        elements += crate::assert_all_equal(&format!("{layer} weights"), &wa, &wb);
        let pw = |l: &akida_core::LayerRef| l.pointwise().map(|p| p.values().collect::<Vec<i8>>());
        if let (Some(pa), Some(pb)) = (pw(&a), pw(&b)) {
            elements += crate::assert_all_equal(&format!("{layer} weights_pw"), &pa, &pb);
        }
        assert_eq!(pw(&a).is_some(), pw(&b).is_some(), "{layer}: weights_pw");
        let th = |l: &akida_core::LayerRef| l.threshold.iter().collect::<Vec<i32>>();
        elements += crate::assert_all_equal(&format!("{layer} threshold"), &th(&a), &th(&b));
        let steps =
            |l: &akida_core::LayerRef| l.act_step.iter().map(f32::to_bits).collect::<Vec<u32>>();
        elements +=
            crate::assert_all_equal(&format!("{layer} act_step bits"), &steps(&a), &steps(&b));
    }
    elements
}
