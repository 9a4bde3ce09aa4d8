//! Hugging Face Whisper folders (`config.json` + `model.safetensors`, as `transformers`
//! saves `WhisperForConditionalGeneration`), so users can bring bigger or fine-tuned
//! models. The tensors are renamed to CTranslate2's names and the attention projections
//! fused the way CTranslate2 fuses them (Q,K,V in one matrix; the key projection has no
//! bias, so its part of the fused bias is zero).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::SpeechError;
use crate::weights::WeightSource;

type Result<T> = std::result::Result<T, SpeechError>;

/// The `config.json` fields that are not visible in the tensors' shapes.
#[derive(Deserialize)]
struct HfConfig {
    encoder_attention_heads: usize,
    decoder_attention_heads: usize,
}

pub struct HfWhisper {
    tensors: HashMap<String, Tensor>,
    encoder_heads: usize,
    decoder_heads: usize,
}

impl HfWhisper {
    pub fn open(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config: HfConfig = std::fs::read_to_string(&config_path)
            .map_err(|e| SpeechError::Model(format!("cannot read {}: {e}", config_path.display())))
            .and_then(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| SpeechError::Model(format!("{}: {e}", config_path.display())))
            })?;
        let weights_path = dir.join("model.safetensors");
        let loaded = candle_core::safetensors::load(&weights_path, &Device::Cpu).map_err(|e| {
            SpeechError::Model(format!("cannot read {}: {e}", weights_path.display()))
        })?;
        let hf: HashMap<String, Tensor> = loaded
            .into_iter()
            .map(|(name, t)| {
                let name = name.strip_prefix("model.").unwrap_or(&name).to_string();
                Ok((name, t.to_dtype(DType::F32)?))
            })
            .collect::<Result<_>>()?;
        Ok(HfWhisper {
            tensors: translate(&hf)?,
            encoder_heads: config.encoder_attention_heads,
            decoder_heads: config.decoder_attention_heads,
        })
    }
}

impl WeightSource for HfWhisper {
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|t| t.dims().to_vec())
    }

    fn scalar(&self, name: &str) -> Option<i64> {
        match name {
            "encoder/num_heads" => i64::try_from(self.encoder_heads).ok(),
            "decoder/num_heads" => i64::try_from(self.decoder_heads).ok(),
            _ => None,
        }
    }

    fn tensor(&self, name: &str, device: &Device) -> Result<Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| SpeechError::Model(format!("the model has no {name}")))?
            .to_device(device)
            .map_err(SpeechError::from)
    }
}

/// Hugging Face names (without the `model.` prefix) → CTranslate2 names.
fn translate(hf: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let get = |name: &str| {
        hf.get(name)
            .cloned()
            .ok_or_else(|| SpeechError::Model(format!("model.safetensors has no {name}")))
    };
    let mut out = HashMap::new();
    let mut copy = |to: String, from: String| -> Result<()> {
        out.insert(to, get(&from)?);
        Ok(())
    };
    for side in ["encoder", "decoder"] {
        copy(
            format!("{side}/position_encodings/encodings"),
            format!("{side}.embed_positions.weight"),
        )?;
        copy(
            format!("{side}/layer_norm/gamma"),
            format!("{side}.layer_norm.weight"),
        )?;
        copy(
            format!("{side}/layer_norm/beta"),
            format!("{side}.layer_norm.bias"),
        )?;
    }
    for conv in ["conv1", "conv2"] {
        for part in ["weight", "bias"] {
            copy(
                format!("encoder/{conv}/{part}"),
                format!("encoder.{conv}.{part}"),
            )?;
        }
    }
    copy(
        "decoder/embeddings/weight".into(),
        "decoder.embed_tokens.weight".into(),
    )?;
    let layers = |side: &str| {
        (0..)
            .take_while(|i| hf.contains_key(&format!("{side}.layers.{i}.fc1.weight")))
            .count()
    };
    let mut layer_parts = Vec::new();
    for side in ["encoder", "decoder"] {
        for i in 0..layers(side) {
            let (to, from) = (format!("{side}/layer_{i}"), format!("{side}.layers.{i}"));
            let mut norm = |to_norm: &str, from_norm: &str| {
                layer_parts.push((
                    format!("{to}/{to_norm}/gamma"),
                    format!("{from}.{from_norm}.weight"),
                ));
                layer_parts.push((
                    format!("{to}/{to_norm}/beta"),
                    format!("{from}.{from_norm}.bias"),
                ));
            };
            norm("self_attention/layer_norm", "self_attn_layer_norm");
            norm("ffn/layer_norm", "final_layer_norm");
            if side == "decoder" {
                norm("attention/layer_norm", "encoder_attn_layer_norm");
            }
            for (to_ffn, from_ffn) in [("ffn/linear_0", "fc1"), ("ffn/linear_1", "fc2")] {
                for part in ["weight", "bias"] {
                    layer_parts.push((
                        format!("{to}/{to_ffn}/{part}"),
                        format!("{from}.{from_ffn}.{part}"),
                    ));
                }
            }
            for part in ["weight", "bias"] {
                layer_parts.push((
                    format!("{to}/self_attention/linear_1/{part}"),
                    format!("{from}.self_attn.out_proj.{part}"),
                ));
            }
            let self_attn = format!("{from}.self_attn");
            out.insert(
                format!("{to}/self_attention/linear_0/weight"),
                fuse_weights(&get, &self_attn, &["q_proj", "k_proj", "v_proj"])?,
            );
            out.insert(
                format!("{to}/self_attention/linear_0/bias"),
                fuse_biases(&get, &self_attn, &["q_proj", "k_proj", "v_proj"])?,
            );
            if side == "decoder" {
                let cross = format!("{from}.encoder_attn");
                for part in ["weight", "bias"] {
                    layer_parts.push((
                        format!("{to}/attention/linear_0/{part}"),
                        format!("{cross}.q_proj.{part}"),
                    ));
                    layer_parts.push((
                        format!("{to}/attention/linear_2/{part}"),
                        format!("{cross}.out_proj.{part}"),
                    ));
                }
                out.insert(
                    format!("{to}/attention/linear_1/weight"),
                    fuse_weights(&get, &cross, &["k_proj", "v_proj"])?,
                );
                out.insert(
                    format!("{to}/attention/linear_1/bias"),
                    fuse_biases(&get, &cross, &["k_proj", "v_proj"])?,
                );
            }
        }
    }
    for (to, from) in layer_parts {
        out.insert(to, get(&from)?);
    }
    Ok(out)
}

fn fuse_weights(
    get: &impl Fn(&str) -> Result<Tensor>,
    prefix: &str,
    parts: &[&str],
) -> Result<Tensor> {
    let weights = parts
        .iter()
        .map(|p| get(&format!("{prefix}.{p}.weight")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&weights, 0)?)
}

/// The fused bias; a projection without a bias (Whisper's key projections) contributes zeros.
fn fuse_biases(
    get: &impl Fn(&str) -> Result<Tensor>,
    prefix: &str,
    parts: &[&str],
) -> Result<Tensor> {
    let biases = parts
        .iter()
        .map(|p| match get(&format!("{prefix}.{p}.bias")) {
            Ok(bias) => Ok(bias),
            Err(_) => {
                let rows = get(&format!("{prefix}.{p}.weight"))?.dim(0)?;
                Ok(Tensor::zeros(rows, DType::F32, &Device::Cpu)?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&biases, 0)?)
}
