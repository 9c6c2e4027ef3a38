//! Helpers of the Keras `.h5` and zoo tests: models holding every layer kind
//! the graph models, the reference summaries, and a
//! bridge to python3 + h5py (installed by `scripts/setup.sh`) to look at our
//! files with the reader Keras itself uses.

use std::path::{Path, PathBuf};
use std::process::Command;

use akida_host::keras::{
    BatchNormConfig, Conv2DConfig, DenseConfig, DepthwiseConv2DConfig, GraphBuilder, LayerConfig,
    Model, Node, Padding, Pool2DConfig, Quantizer, ReluConfig, SeparableConv2DConfig,
};

/// `tests/data/reference/zoo`.
pub fn zoo_dir() -> PathBuf {
    crate::data_dir().join("reference").join("zoo")
}

/// A serial model under construction: each layer is fed by the one before.
pub struct Net {
    g: GraphBuilder,
    last: Node,
}

impl Net {
    /// A model whose InputLayer `input` has `shape` (H, W, C); `seed` drives
    /// the Keras weight initialisation.
    pub fn input(seed: u64, shape: &[usize]) -> Net {
        let mut g = GraphBuilder::new(seed);
        let last = g.input(shape, Some("input")).unwrap();
        Net { g, last }
    }

    /// Adds the layer `name` after the last one.
    pub fn add(mut self, name: &str, config: LayerConfig) -> Net {
        self.last = self
            .g
            .add(config, Some(name), &[&self.last])
            .unwrap_or_else(|e| panic!("adding {name}: {e}"));
        self
    }

    /// The model `name`, whose output is the last layer.
    pub fn build(self, name: &str) -> Model {
        self.g.build(name, &[&self.last]).unwrap()
    }
}

/// A float model with every Keras layer kind of the graph, in one chain.
pub fn all_float_kinds(seed: u64) -> Model {
    let mut g = GraphBuilder::new(seed);
    let x = g.input(&[12, 10, 3], None).unwrap();
    let mut x = g
        .add(
            LayerConfig::Rescaling {
                scale: 1.0 / 127.0,
                offset: -1.0,
            },
            None,
            &[&x],
        )
        .unwrap();
    let layers: Vec<(LayerConfig, &str)> = vec![
        (
            LayerConfig::Conv2D(Conv2DConfig {
                strides: [2, 1],
                padding: Padding::Same,
                use_bias: false,
                ..Conv2DConfig::new(8, [5, 3])
            }),
            "conv",
        ),
        (
            LayerConfig::BatchNormalization(BatchNormConfig {
                epsilon: 1e-2,
                ..Default::default()
            }),
            "conv_BN",
        ),
        (
            LayerConfig::ReLU(ReluConfig {
                max_value: Some(6.0),
                ..Default::default()
            }),
            "conv_relu",
        ),
        (
            LayerConfig::SeparableConv2D(SeparableConv2DConfig {
                padding: Padding::Same,
                ..SeparableConv2DConfig::new(6, [3, 3])
            }),
            "sep",
        ),
        (
            LayerConfig::MaxPooling2D(Pool2DConfig {
                padding: Padding::Same,
                ..Pool2DConfig::new([2, 2])
            }),
            "sep_maxpool",
        ),
        (LayerConfig::ReLU(ReluConfig::default()), "relu_plain"),
        (
            LayerConfig::DepthwiseConv2D(DepthwiseConv2DConfig {
                depth_multiplier: 2,
                ..DepthwiseConv2DConfig::new([2, 2])
            }),
            "dw",
        ),
        (
            LayerConfig::AveragePooling2D(Pool2DConfig::new([1, 2])),
            "avg",
        ),
        (
            LayerConfig::Activation {
                activation: "relu".into(),
            },
            "act_relu",
        ),
        (LayerConfig::Dropout { rate: 0.25 }, "drop"),
        (
            LayerConfig::GlobalAveragePooling2D { keepdims: false },
            "gap",
        ),
        (
            LayerConfig::Reshape {
                target_shape: vec![1, 1, -1],
            },
            "reshape",
        ),
        (LayerConfig::Flatten, "flat"),
        (LayerConfig::Dense(DenseConfig::new(5)), "dense"),
        (
            LayerConfig::Activation {
                activation: "softmax".into(),
            },
            "act_softmax",
        ),
    ];
    for (config, name) in layers {
        x = g.add(config, Some(name), &[&x]).unwrap();
    }
    g.build("all_float_kinds", &[&x]).unwrap()
}

/// A cnn2snn quantized model with every quantized layer kind, in one chain.
pub fn all_quantized_kinds(seed: u64) -> Model {
    let mut g = GraphBuilder::new(seed);
    let x = g.input(&[8, 8, 1], None).unwrap();
    let mut x = g
        .add(
            LayerConfig::Rescaling {
                scale: 1.0 / 255.0,
                offset: 0.0,
            },
            None,
            &[&x],
        )
        .unwrap();
    let layers: Vec<(LayerConfig, &str)> = vec![
        (
            LayerConfig::QuantizedConv2D {
                conv: Conv2DConfig {
                    padding: Padding::Same,
                    ..Conv2DConfig::new(4, [3, 3])
                },
                quantizer: Quantizer::max_per_axis(8),
            },
            "conv_0",
        ),
        (
            LayerConfig::QuantizedReLU {
                bitwidth: 4,
                max_value: 6.0,
            },
            "conv_0_relu",
        ),
        (
            LayerConfig::QuantizedSeparableConv2D {
                conv: SeparableConv2DConfig::new(6, [3, 3]),
                quantizer: Quantizer::max_per_axis(4),
                quantizer_dw: Quantizer::max(4),
            },
            "separable_1",
        ),
        (
            LayerConfig::MaxPooling2D(Pool2DConfig::new([2, 2])),
            "separable_1_maxpool",
        ),
        (
            LayerConfig::ActivationDiscreteRelu { bitwidth: 2 },
            "separable_1_relu",
        ),
        (LayerConfig::Flatten, "flatten"),
        (
            LayerConfig::QuantizedDense {
                dense: DenseConfig::new(3),
                quantizer: Quantizer::max_per_axis(2),
            },
            "dense_2",
        ),
    ];
    for (config, name) in layers {
        x = g.add(config, Some(name), &[&x]).unwrap();
    }
    g.build("all_quantized_kinds", &[&x]).unwrap()
}

/// The same model with the raw configs of a read file dropped, for
/// comparing graphs and weights.
pub fn without_raw(mut model: Model) -> Model {
    model.layers.iter_mut().for_each(|l| l.raw = None);
    model
}

/// One row of a Keras summary: name, class, output shape and parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    pub name: String,
    pub class: String,
    pub shape: String,
    pub params: usize,
}

/// A parsed summary: its rows and the three totals lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub model: String,
    pub rows: Vec<SummaryRow>,
    pub totals: Vec<String>,
}

/// Parses a three-column Keras summary (columns at 0, 49 and 93 for a
/// 110-character line), joining wrapped cells.
pub fn parse_summary(text: &str) -> Summary {
    let lines: Vec<&str> = text.lines().collect();
    let model = lines[0]
        .strip_prefix("Model: \"")
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no model line: {}", lines[0]))
        .to_owned();
    let rules: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("==="))
        .collect();
    assert_eq!(rules.len(), 2, "summary needs two `===` rules");
    let mut rows = Vec::new();
    let mut cells = [String::new(), String::new(), String::new()];
    let cut = |line: &str, a: usize, b: usize| -> String {
        let chars: Vec<char> = line.chars().collect();
        chars[a.min(chars.len())..b.min(chars.len())]
            .iter()
            .collect::<String>()
            .trim()
            .to_owned()
    };
    for line in &lines[rules[0] + 1..rules[1]] {
        if line.trim().is_empty() {
            if !cells[0].is_empty() {
                rows.push(summary_row(&cells));
                cells = Default::default();
            }
            continue;
        }
        for (i, (a, b)) in [(0, 49), (49, 93), (93, 200)].into_iter().enumerate() {
            cells[i].push_str(&cut(line, a, b));
        }
    }
    if !cells[0].is_empty() {
        rows.push(summary_row(&cells));
    }
    let totals = lines[rules[1] + 1..]
        .iter()
        .filter(|l| !l.starts_with("___"))
        .map(|l| l.to_string())
        .collect();
    Summary {
        model,
        rows,
        totals,
    }
}

fn summary_row(cells: &[String; 3]) -> SummaryRow {
    let (name, class) = cells[0]
        .rsplit_once(" (")
        .unwrap_or_else(|| panic!("bad layer cell {:?}", cells[0]));
    SummaryRow {
        name: name.to_owned(),
        class: class.trim_end_matches(')').to_owned(),
        shape: cells[1].clone(),
        params: cells[2]
            .parse()
            .unwrap_or_else(|_| panic!("bad params {:?}", cells[2])),
    }
}

/// Keras numbers these layer names per session (`input_3`, `flatten_1`):
/// their counter may differ from the reference.
pub fn is_auto_named(name: &str) -> bool {
    ["input", "rescaling", "flatten", "reshape", "dropout"]
        .iter()
        .any(|base| {
            name == *base
                || name
                    .strip_prefix(base)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The stem of an automatic name (`flatten_2` -> `flatten`).
pub fn auto_name_stem(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((stem, n)) if n.bytes().all(|b| b.is_ascii_digit()) => stem,
        _ => name,
    }
}

/// Runs `python3 -c script args...` and returns its stdout; panics with
/// stderr when it fails.
pub fn python(script: &str, args: &[&Path]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is needed (scripts/setup.sh installs it with h5py)");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python output is UTF-8")
}

/// What h5py sees in a Keras file: root and `/model_weights` attributes,
/// every layer's `weight_names` and each weight dataset's dtype and shape
/// (as JSON).
pub const H5PY_DUMP: &str = r#"
import h5py, json, sys
f = h5py.File(sys.argv[1], "r")
def s(v):
    return v.decode() if isinstance(v, bytes) else str(v)
def strtype(obj, name):
    t = obj.attrs.get_id(name).get_type()
    return {"vlen": bool(t.is_variable_str()), "utf8": t.get_cset() == 1} if isinstance(t, h5py.h5t.TypeStringID) else None
mw = f["model_weights"]
out = {
    "root": {k: s(f.attrs[k]) for k in f.attrs},
    "root_types": {k: strtype(f, k) for k in f.attrs},
    "mw": {k: s(mw.attrs[k]) for k in ("backend", "keras_version")},
    "layer_names": [s(n) for n in mw.attrs["layer_names"]],
    "layer_names_type": strtype(mw, "layer_names"),
    "layers": {},
    "top_level": str(mw["top_level_model_weights"].attrs["weight_names"].dtype),
    "groups": sorted(f.keys()),
}
for name in out["layer_names"]:
    g = mw[name]
    wn = g.attrs["weight_names"]
    out["layers"][name] = {
        "weight_names": [s(n) for n in wn],
        "empty_dtype": str(wn.dtype) if len(wn) == 0 else None,
        "datasets": {s(n): [str(g[s(n)].dtype), list(g[s(n)].shape)] for n in wn},
    }
print(json.dumps(out))
"#;
