//! File names of the flow: `M.h5` quantized at I/W/A bits is saved as
//! `M_iqI_wqW_aqA.h5`, an existing `_iq.._wq.._aq..` suffix (with an optional
//! `_laqB`) being replaced, and `_laqB` appended when the last activation is
//! re-quantized; a converted model is `M.akd` (or `M.fbz`).

use std::path::{Path, PathBuf};

/// The stem of `path` without a trailing `_iqI_wqW_aqA[_laqB]` suffix.
pub fn base_stem(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    strip_suffix(&stem).to_owned()
}

fn strip_suffix(stem: &str) -> &str {
    // Optional trailing `_laqN`.
    let without_laq = match stem.rfind("_laq") {
        Some(i) if is_digits(&stem[i + 4..]) => &stem[..i],
        _ => stem,
    };
    let parts: Vec<&str> = without_laq.rsplitn(4, '_').collect();
    // rsplitn gives [aqA, wqW, iqI, rest] for a quantized name.
    if parts.len() == 4
        && tagged(parts[0], "aq")
        && tagged(parts[1], "wq")
        && tagged(parts[2], "iq")
    {
        parts[3]
    } else {
        stem
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn tagged(part: &str, tag: &str) -> bool {
    part.strip_prefix(tag).is_some_and(is_digits)
}

/// `DIR/STEM_iqI_wqW_aqA[_laqB].h5` for a model read from `input`.
pub fn quantized_path(input: &Path, iq: u32, wq: u32, aq: u32, laq: Option<u32>) -> PathBuf {
    let mut name = format!("{}_iq{iq}_wq{wq}_aq{aq}", base_stem(input));
    if let Some(b) = laq {
        name.push_str(&format!("_laq{b}"));
    }
    name.push_str(".h5");
    input.with_file_name(name)
}

/// `DIR/STEM.EXT` for a model converted from `input` (extension `akd` or `fbz`).
pub fn converted_path(input: &Path, extension: &str) -> PathBuf {
    input.with_extension(extension)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_names_replace_an_existing_suffix() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            quantized_path(&p("vgg_cifar10.h5"), 4, 4, 4, None),
            p("vgg_cifar10_iq4_wq4_aq4.h5")
        );
        assert_eq!(
            quantized_path(&p("x_iq4_wq4_aq4.h5"), 2, 2, 2, None),
            p("x_iq2_wq2_aq2.h5")
        );
        assert_eq!(
            quantized_path(&p("models/ds_cnn_kws.h5"), 8, 4, 4, Some(1)),
            p("models/ds_cnn_kws_iq8_wq4_aq4_laq1.h5")
        );
        assert_eq!(
            quantized_path(&p("./a.b/ds_cnn_kws_iq8_wq4_aq4_laq1.h5"), 8, 4, 4, Some(2)),
            p("./a.b/ds_cnn_kws_iq8_wq4_aq4_laq2.h5")
        );
        // Not a full suffix: kept.
        assert_eq!(
            quantized_path(&p("m_wq4_aq4.h5"), 4, 4, 4, None),
            p("m_wq4_aq4_iq4_wq4_aq4.h5")
        );
    }

    #[test]
    fn converted_names_change_the_extension() {
        assert_eq!(
            converted_path(Path::new("d/m_iq4_wq4_aq4.h5"), "akd"),
            PathBuf::from("d/m_iq4_wq4_aq4.akd")
        );
    }
}
