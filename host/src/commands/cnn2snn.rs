//! The `cnn2snn` command's flows on files: read a Keras `.h5`, quantize,
//! convert or check it, and save the result (atomically) under the names
//! the flow uses. Every error names the file it concerns.

use std::path::{Path, PathBuf};

use crate::formats::{self, ModelFileError};
use crate::keras::{self, H5Error};

use crate::cnn2snn::naming;
use crate::cnn2snn::quantize::QuantizeOptions;
use crate::cnn2snn::{check, Cnn2snnError, Report};
use crate::cnn2snn::{Alignment, Conversion, ConvertOptions, InputScaling};

/// Why a flow failed.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Read(H5Error),
    #[error("{}", path.display())]
    Model { path: PathBuf, source: Cnn2snnError },
    #[error(transparent)]
    SaveKeras(H5Error),
    #[error(transparent)]
    SaveModel(ModelFileError),
}

fn read(path: &Path) -> Result<keras::Model, FlowError> {
    keras::read_model(path).map_err(FlowError::Read)
}

fn model_error(path: &Path) -> impl FnOnce(Cnn2snnError) -> FlowError + '_ {
    move |source| FlowError::Model {
        path: path.to_owned(),
        source,
    }
}

/// `cnn2snn -m M.h5 quantize`: writes `M_iqI_wqW_aqA[_laqB].h5` (or
/// `output`) and returns its path.
pub fn quantize_file(
    input: &Path,
    options: &QuantizeOptions,
    output: Option<&Path>,
) -> Result<PathBuf, FlowError> {
    let model = read(input)?;
    let quantized = crate::cnn2snn::quantize(&model, options).map_err(model_error(input))?;
    let out = output.map(Path::to_owned).unwrap_or_else(|| {
        naming::quantized_path(
            input,
            options.input_bits(),
            options.weight_bits,
            options.activation_bits,
            options.last_activation_bits,
        )
    });
    keras::write_model(&out, &quantized).map_err(FlowError::SaveKeras)?;
    Ok(out)
}

/// `cnn2snn -m M.h5 convert`: writes `M.akd` (or `output`, `.akd` or
/// `.fbz`) and returns its path with the conversion's report and notes.
pub fn convert_file(
    input: &Path,
    options: &ConvertOptions,
    output: Option<&Path>,
) -> Result<(PathBuf, Conversion), FlowError> {
    let out = output
        .map(Path::to_owned)
        .unwrap_or_else(|| naming::converted_path(input, "akd"));
    // Refuse an unknown output format before any work.
    formats::ModelFormat::of_path(&out).map_err(FlowError::SaveModel)?;
    let model = read(input)?;
    let conversion = crate::cnn2snn::convert(&model, options).map_err(model_error(input))?;
    formats::save(&conversion.model, &out).map_err(FlowError::SaveModel)?;
    Ok((out, conversion))
}

/// `cnn2snn -m M.h5 align`: moves the quantized model's biases and kernel
/// scales onto the integer grid of its conversion ([`crate::cnn2snn::align`])
/// and saves it over `M.h5` (or `output`), atomically.
pub fn align_file(
    input: &Path,
    scaling: Option<InputScaling>,
    output: Option<&Path>,
) -> Result<(PathBuf, Alignment), FlowError> {
    let model = read(input)?;
    let alignment = crate::cnn2snn::align(&model, scaling).map_err(model_error(input))?;
    let out = output.unwrap_or(input).to_owned();
    keras::write_model(&out, &alignment.model).map_err(FlowError::SaveKeras)?;
    Ok((out, alignment))
}

/// `cnn2snn -m M.h5 check`: the compatibility report, nothing written.
pub fn check_file(input: &Path, scaling: Option<InputScaling>) -> Result<Report, FlowError> {
    let model = read(input)?;
    Ok(check::check_model(&model, scaling))
}
