//! A Hugging Face Whisper folder (config.json + model.safetensors + tokenizer.json) loads
//! and transcribes exactly as the same weights in CTranslate2 form do. The folder is made
//! here from the bundled CTranslate2 model by undoing its renaming and fusing, under the
//! tensor names `transformers` uses, so nothing is fetched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use hark_speech::ct2::Ct2Model;
use hark_speech::{Engine, Options};

fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/whisper-tiny.en")
}

fn clip(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/audio")
        .join(name)
}

/// CTranslate2 name → Hugging Face name, for one layer's unfused parts.
fn layer_names(side: &str, i: usize) -> Vec<(String, String)> {
    let (ct2, hf) = (
        format!("{side}/layer_{i}"),
        format!("model.{side}.layers.{i}"),
    );
    let mut names = vec![
        (
            "self_attention/layer_norm/gamma",
            "self_attn_layer_norm.weight",
        ),
        (
            "self_attention/layer_norm/beta",
            "self_attn_layer_norm.bias",
        ),
        (
            "self_attention/linear_1/weight",
            "self_attn.out_proj.weight",
        ),
        ("self_attention/linear_1/bias", "self_attn.out_proj.bias"),
        ("ffn/layer_norm/gamma", "final_layer_norm.weight"),
        ("ffn/layer_norm/beta", "final_layer_norm.bias"),
        ("ffn/linear_0/weight", "fc1.weight"),
        ("ffn/linear_0/bias", "fc1.bias"),
        ("ffn/linear_1/weight", "fc2.weight"),
        ("ffn/linear_1/bias", "fc2.bias"),
    ];
    if side == "decoder" {
        names.extend([
            (
                "attention/layer_norm/gamma",
                "encoder_attn_layer_norm.weight",
            ),
            ("attention/layer_norm/beta", "encoder_attn_layer_norm.bias"),
            ("attention/linear_0/weight", "encoder_attn.q_proj.weight"),
            ("attention/linear_0/bias", "encoder_attn.q_proj.bias"),
            ("attention/linear_2/weight", "encoder_attn.out_proj.weight"),
            ("attention/linear_2/bias", "encoder_attn.out_proj.bias"),
        ]);
    }
    names
        .into_iter()
        .map(|(c, h)| (format!("{ct2}/{c}"), format!("{hf}.{h}")))
        .collect()
}

/// Writes the bundled model as a Hugging Face folder into `dir`.
fn write_hf_folder(dir: &Path) {
    let device = Device::Cpu;
    let ct2 = Ct2Model::open(&bundled().join("model.bin")).expect("bundled model");
    let get = |name: &str| {
        ct2.tensor(name, &device)
            .and_then(|t| Ok(t.to_dtype(DType::F16)?))
            .expect(name)
    };
    let mut hf: HashMap<String, Tensor> = HashMap::new();
    for side in ["encoder", "decoder"] {
        for (hf_name, ct2_name) in [
            ("embed_positions.weight", "position_encodings/encodings"),
            ("layer_norm.weight", "layer_norm/gamma"),
            ("layer_norm.bias", "layer_norm/beta"),
        ] {
            hf.insert(
                format!("model.{side}.{hf_name}"),
                get(&format!("{side}/{ct2_name}")),
            );
        }
    }
    for conv in ["conv1", "conv2"] {
        for part in ["weight", "bias"] {
            hf.insert(
                format!("model.encoder.{conv}.{part}"),
                get(&format!("encoder/{conv}/{part}")),
            );
        }
    }
    hf.insert(
        "model.decoder.embed_tokens.weight".into(),
        get("decoder/embeddings/weight"),
    );
    let layers = |side: &str| {
        (0..)
            .take_while(|i| {
                ct2.variable(&format!("{side}/layer_{i}/ffn/linear_0/weight"))
                    .is_some()
            })
            .count()
    };
    for side in ["encoder", "decoder"] {
        for i in 0..layers(side) {
            for (ct2_name, hf_name) in layer_names(side, i) {
                hf.insert(hf_name, get(&ct2_name));
            }
            let hf_layer = format!("model.{side}.layers.{i}");
            let mut split = |ct2_fused: &str, hf_prefix: &str, parts: &[&str]| {
                let weight = get(&format!("{ct2_fused}/weight"));
                let bias = get(&format!("{ct2_fused}/bias"));
                let rows = weight.dim(0).expect("rows") / parts.len();
                for (n, part) in parts.iter().enumerate() {
                    hf.insert(
                        format!("{hf_prefix}.{part}.weight"),
                        weight.narrow(0, n * rows, rows).expect("narrow"),
                    );
                    // transformers' Whisper key projections have no bias.
                    if *part != "k_proj" {
                        hf.insert(
                            format!("{hf_prefix}.{part}.bias"),
                            bias.narrow(0, n * rows, rows).expect("narrow"),
                        );
                    }
                }
            };
            split(
                &format!("{side}/layer_{i}/self_attention/linear_0"),
                &format!("{hf_layer}.self_attn"),
                &["q_proj", "k_proj", "v_proj"],
            );
            if side == "decoder" {
                split(
                    &format!("decoder/layer_{i}/attention/linear_1"),
                    &format!("{hf_layer}.encoder_attn"),
                    &["k_proj", "v_proj"],
                );
            }
        }
    }
    candle_core::safetensors::save(&hf, dir.join("model.safetensors")).expect("save");
    // Hugging Face's config names for what CTranslate2's config.json holds.
    let ct2_config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(bundled().join("config.json")).expect("config"),
    )
    .expect("json");
    let heads = |name: &str| ct2.scalar(name).expect(name);
    let config = serde_json::json!({
        "model_type": "whisper",
        "encoder_attention_heads": heads("encoder/num_heads"),
        "decoder_attention_heads": heads("decoder/num_heads"),
        "suppress_tokens": ct2_config["suppress_ids"],
        "begin_suppress_tokens": ct2_config["suppress_ids_begin"],
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    std::fs::copy(bundled().join("tokenizer.json"), dir.join("tokenizer.json")).expect("tokenizer");
}

#[test]
fn hugging_face_folder_transcribes_like_the_ctranslate2_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_hf_folder(dir.path());
    assert!(!dir.path().join("model.bin").exists());
    let samples =
        hark_speech::audio::load_16k(&clip("meeting_01.wav"), &Default::default()).expect("clip");
    let options = Options {
        beam_size: 1,
        ..Options::default()
    };
    let from_ct2 = Engine::load(&bundled())
        .expect("CTranslate2 folder")
        .transcribe(&samples, &options, &mut |_| {})
        .expect("transcript");
    let from_hf = Engine::load(dir.path())
        .expect("Hugging Face folder")
        .transcribe(&samples, &options, &mut |_| {})
        .expect("transcript");
    assert!(from_ct2.text().split_whitespace().count() > 10);
    assert_eq!(from_hf.text(), from_ct2.text());
    assert_eq!(from_hf.segments, from_ct2.segments);
}

#[test]
fn a_folder_without_weights_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let message = Engine::load(dir.path())
        .err()
        .expect("no weights")
        .to_string();
    assert!(
        message.contains("model.bin") && message.contains("model.safetensors"),
        "{message}"
    );
}

#[test]
fn a_hugging_face_folder_missing_a_tensor_names_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_hf_folder(dir.path());
    let path = dir.path().join("model.safetensors");
    let without: HashMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu)
        .expect("load")
        .into_iter()
        .filter(|(name, _)| name != "model.decoder.layers.0.fc2.weight")
        .collect();
    candle_core::safetensors::save(&without, &path).expect("save");
    let message = Engine::load(dir.path())
        .err()
        .expect("incomplete")
        .to_string();
    assert!(message.contains("decoder.layers.0.fc2.weight"), "{message}");
}
