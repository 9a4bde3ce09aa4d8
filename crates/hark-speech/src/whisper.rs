//! Whisper's encoder and decoder on candle, with weights taken straight from a
//! CTranslate2 model (fused attention projections kept fused: one matmul instead of three)
//! and a key/value cache for the decoder's self-attention, so each new token costs one
//! position's work rather than the whole sequence's.

use candle_core::{D, Device, IndexOp, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, Linear};

use crate::SpeechError;
use crate::ct2::Ct2Model;

type Result<T> = std::result::Result<T, SpeechError>;

/// Sizes read off the weights themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub n_mels: usize,
    pub d_model: usize,
    pub encoder_heads: usize,
    pub decoder_heads: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub vocab: usize,
    pub audio_ctx: usize,
    pub text_ctx: usize,
}

struct Attention {
    /// Self-attention: fused Q,K,V. Cross-attention: Q only.
    qkv_or_q: Linear,
    /// Cross-attention only: fused K,V applied to the encoder output.
    kv: Option<Linear>,
    out: Linear,
    heads: usize,
}

struct EncoderLayer {
    attn_ln: LayerNorm,
    attn: Attention,
    ffn_ln: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
}

struct DecoderLayer {
    self_ln: LayerNorm,
    self_attn: Attention,
    cross_ln: LayerNorm,
    cross_attn: Attention,
    ffn_ln: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
}

pub struct Whisper {
    pub dims: Dims,
    conv1: Conv1d,
    conv2: Conv1d,
    encoder_positions: Tensor,
    encoder_layers: Vec<EncoderLayer>,
    encoder_ln: LayerNorm,
    embeddings: Tensor,
    decoder_positions: Tensor,
    decoder_layers: Vec<DecoderLayer>,
    decoder_ln: LayerNorm,
    device: Device,
}

/// The per-window state of decoding: cross-attention keys/values (from the audio) and
/// the growing self-attention cache, for a batch of sequences (beams).
pub struct DecoderState {
    cross: Vec<(Tensor, Tensor)>,
    cache: Vec<Option<(Tensor, Tensor)>>,
    /// How many positions the cache holds.
    pub len: usize,
}

impl DecoderState {
    /// Keeps only the given sequences, in the given order (beam search re-ranking). The
    /// cross-attention keys and values are the same for every sequence (one audio window),
    /// so only the self-attention cache moves.
    pub fn select(&mut self, rows: &[u32]) -> Result<()> {
        let Some(device) = self
            .cache
            .iter()
            .flatten()
            .next()
            .map(|(k, _)| k.device().clone())
        else {
            return Ok(());
        };
        let index = Tensor::new(rows, &device)?;
        for (k, v) in self.cache.iter_mut().flatten() {
            *k = k.index_select(&index, 0)?;
            *v = v.index_select(&index, 0)?;
        }
        Ok(())
    }
}

fn linear(model: &Ct2Model, prefix: &str, device: &Device) -> Result<Linear> {
    let weight = model.tensor(&format!("{prefix}/weight"), device)?;
    let bias = match model.variable(&format!("{prefix}/bias")) {
        Some(_) => Some(model.tensor(&format!("{prefix}/bias"), device)?),
        None => None,
    };
    Ok(Linear::new(weight, bias))
}

fn layer_norm(model: &Ct2Model, prefix: &str, device: &Device) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        model.tensor(&format!("{prefix}/gamma"), device)?,
        model.tensor(&format!("{prefix}/beta"), device)?,
        1e-5,
    ))
}

fn conv(model: &Ct2Model, prefix: &str, stride: usize, device: &Device) -> Result<Conv1d> {
    let config = Conv1dConfig {
        padding: 1,
        stride,
        dilation: 1,
        groups: 1,
        cudnn_fwd_algo: None,
    };
    Ok(Conv1d::new(
        model.tensor(&format!("{prefix}/weight"), device)?,
        Some(model.tensor(&format!("{prefix}/bias"), device)?),
        config,
    ))
}

fn count_layers(model: &Ct2Model, side: &str) -> usize {
    (0..)
        .take_while(|i| {
            model
                .variable(&format!("{side}/layer_{i}/ffn/linear_0/weight"))
                .is_some()
        })
        .count()
}

impl Whisper {
    pub fn from_ct2(model: &Ct2Model, device: &Device) -> Result<Self> {
        if model.spec != "WhisperSpec" {
            return Err(SpeechError::Model(format!(
                "expected a Whisper model, found {}",
                model.spec
            )));
        }
        let shape = |name: &str| {
            model
                .variable(name)
                .map(|v| v.shape.clone())
                .ok_or_else(|| SpeechError::Model(format!("the model has no {name}")))
        };
        let conv1_shape = shape("encoder/conv1/weight")?;
        let emb_shape = shape("decoder/embeddings/weight")?;
        let enc_pos = shape("encoder/position_encodings/encodings")?;
        let dec_pos = shape("decoder/position_encodings/encodings")?;
        let heads = |name: &str| {
            model
                .scalar(name)
                .map(|h| h as usize)
                .ok_or_else(|| SpeechError::Model(format!("the model has no {name}")))
        };
        let dims = Dims {
            n_mels: conv1_shape[1],
            d_model: conv1_shape[0],
            encoder_heads: heads("encoder/num_heads")?,
            decoder_heads: heads("decoder/num_heads")?,
            encoder_layers: count_layers(model, "encoder"),
            decoder_layers: count_layers(model, "decoder"),
            vocab: emb_shape[0],
            audio_ctx: enc_pos[0],
            text_ctx: dec_pos[0],
        };
        if !dims.d_model.is_multiple_of(dims.encoder_heads)
            || dims.encoder_layers == 0
            || dims.decoder_layers == 0
        {
            return Err(SpeechError::Model(format!(
                "inconsistent model dimensions {dims:?}"
            )));
        }
        let encoder_layers = (0..dims.encoder_layers)
            .map(|i| {
                let p = format!("encoder/layer_{i}");
                Ok(EncoderLayer {
                    attn_ln: layer_norm(model, &format!("{p}/self_attention/layer_norm"), device)?,
                    attn: Attention {
                        qkv_or_q: linear(model, &format!("{p}/self_attention/linear_0"), device)?,
                        kv: None,
                        out: linear(model, &format!("{p}/self_attention/linear_1"), device)?,
                        heads: dims.encoder_heads,
                    },
                    ffn_ln: layer_norm(model, &format!("{p}/ffn/layer_norm"), device)?,
                    ffn_in: linear(model, &format!("{p}/ffn/linear_0"), device)?,
                    ffn_out: linear(model, &format!("{p}/ffn/linear_1"), device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder_layers = (0..dims.decoder_layers)
            .map(|i| {
                let p = format!("decoder/layer_{i}");
                Ok(DecoderLayer {
                    self_ln: layer_norm(model, &format!("{p}/self_attention/layer_norm"), device)?,
                    self_attn: Attention {
                        qkv_or_q: linear(model, &format!("{p}/self_attention/linear_0"), device)?,
                        kv: None,
                        out: linear(model, &format!("{p}/self_attention/linear_1"), device)?,
                        heads: dims.decoder_heads,
                    },
                    cross_ln: layer_norm(model, &format!("{p}/attention/layer_norm"), device)?,
                    cross_attn: Attention {
                        qkv_or_q: linear(model, &format!("{p}/attention/linear_0"), device)?,
                        kv: Some(linear(model, &format!("{p}/attention/linear_1"), device)?),
                        out: linear(model, &format!("{p}/attention/linear_2"), device)?,
                        heads: dims.decoder_heads,
                    },
                    ffn_ln: layer_norm(model, &format!("{p}/ffn/layer_norm"), device)?,
                    ffn_in: linear(model, &format!("{p}/ffn/linear_0"), device)?,
                    ffn_out: linear(model, &format!("{p}/ffn/linear_1"), device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Whisper {
            dims,
            conv1: conv(model, "encoder/conv1", 1, device)?,
            conv2: conv(model, "encoder/conv2", 2, device)?,
            encoder_positions: model.tensor("encoder/position_encodings/encodings", device)?,
            encoder_layers,
            encoder_ln: layer_norm(model, "encoder/layer_norm", device)?,
            embeddings: model.tensor("decoder/embeddings/weight", device)?,
            decoder_positions: model.tensor("decoder/position_encodings/encodings", device)?,
            decoder_layers,
            decoder_ln: layer_norm(model, "decoder/layer_norm", device)?,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `mel`: [batch, n_mels, 3000] → audio features [batch, 1500, d_model].
    pub fn encode(&self, mel: &Tensor) -> Result<Tensor> {
        let x = self.conv1.forward(mel)?.gelu_erf()?;
        let x = self.conv2.forward(&x)?.gelu_erf()?;
        let x = x.transpose(1, 2)?;
        let frames = x.dim(1)?;
        let mut x = x.broadcast_add(&self.encoder_positions.narrow(0, 0, frames)?)?;
        for layer in &self.encoder_layers {
            let h = layer.attn_ln.forward(&x)?;
            x = (x + layer.attn.self_attend(&h)?)?;
            let h = layer.ffn_ln.forward(&x)?;
            let h = layer
                .ffn_out
                .forward(&layer.ffn_in.forward(&h)?.gelu_erf()?)?;
            x = (x + h)?;
        }
        Ok(self.encoder_ln.forward(&x)?)
    }

    /// Prepares decoding against `audio` ([1, frames, d]). The cross-attention keys and
    /// values are computed once and broadcast over however many sequences are decoded.
    pub fn start(&self, audio: &Tensor) -> Result<DecoderState> {
        let cross = self
            .decoder_layers
            .iter()
            .map(|layer| layer.cross_attn.cross_kv(audio))
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderState {
            cross,
            cache: vec![None; self.decoder_layers.len()],
            len: 0,
        })
    }

    /// Feeds `tokens` ([batch, n], continuing the state) and returns the logits of the
    /// last position of each sequence, [batch, vocab].
    pub fn decode_last(&self, tokens: &Tensor, state: &mut DecoderState) -> Result<Tensor> {
        let n = tokens.dim(1)?;
        if state.len + n > self.dims.text_ctx {
            return Err(SpeechError::Model("decoder context is full".into()));
        }
        let positions = self.decoder_positions.narrow(0, state.len, n)?;
        let mut x = self
            .embeddings
            .embedding_lookup(tokens)?
            .broadcast_add(&positions)?;
        let mask = if n > 1 {
            Some(causal_mask(n, state.len, &self.device)?)
        } else {
            None
        };
        for (i, layer) in self.decoder_layers.iter().enumerate() {
            let h = layer.self_ln.forward(&x)?;
            x = (x + layer
                .self_attn
                .cached_attend(&h, mask.as_ref(), &mut state.cache[i])?)?;
            let h = layer.cross_ln.forward(&x)?;
            let (k, v) = &state.cross[i];
            x = (x + layer.cross_attn.cross_attend(&h, k, v)?)?;
            let h = layer.ffn_ln.forward(&x)?;
            x = (x + layer
                .ffn_out
                .forward(&layer.ffn_in.forward(&h)?.gelu_erf()?)?)?;
        }
        state.len += n;
        let last = self
            .decoder_ln
            .forward(&x.i((.., n - 1..n, ..))?)?
            .squeeze(1)?;
        Ok(last.matmul(&self.embeddings.t()?)?)
    }
}

trait EmbeddingLookup {
    fn embedding_lookup(&self, ids: &Tensor) -> candle_core::Result<Tensor>;
}

impl EmbeddingLookup for Tensor {
    fn embedding_lookup(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n) = ids.dims2()?;
        let flat = self.index_select(&ids.flatten_all()?, 0)?;
        flat.reshape((b, n, self.dim(1)?))
    }
}

fn causal_mask(n: usize, offset: usize, device: &Device) -> Result<Tensor> {
    let total = offset + n;
    let values: Vec<f32> = (0..n)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j > offset + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(values, (n, total), device)?)
}

impl Attention {
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        Ok(x.reshape((b, t, self.heads, d / self.heads))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    fn merge_heads(x: &Tensor) -> Result<Tensor> {
        let (b, h, t, dh) = x.dims4()?;
        Ok(x.transpose(1, 2)?.reshape((b, t, h * dh))?)
    }

    /// Scaled dot-product attention per head: [b, h, n, dh] in, [b, h, n, dh] out.
    fn weigh(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let dh = q.dim(D::Minus1)?;
        let scale = 1.0 / (dh as f64).sqrt();
        let mut scores = (q.matmul(&k.t()?)? * scale)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        Ok(weights.matmul(v)?)
    }

    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let out = Self::merge_heads(&Self::weigh(q, k, v, mask)?)?;
        Ok(self.out.forward(&out)?)
    }

    fn qkv(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let fused = self.qkv_or_q.forward(x)?;
        let d = fused.dim(D::Minus1)? / 3;
        Ok((
            self.split_heads(&fused.narrow(D::Minus1, 0, d)?)?,
            self.split_heads(&fused.narrow(D::Minus1, d, d)?)?,
            self.split_heads(&fused.narrow(D::Minus1, 2 * d, d)?)?,
        ))
    }

    fn self_attend(&self, x: &Tensor) -> Result<Tensor> {
        let (q, k, v) = self.qkv(x)?;
        self.attend(&q, &k, &v, None)
    }

    fn cached_attend(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut Option<(Tensor, Tensor)>,
    ) -> Result<Tensor> {
        let (q, k, v) = self.qkv(x)?;
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        let out = self.attend(&q, &k, &v, mask)?;
        *cache = Some((k, v));
        Ok(out)
    }

    fn cross_kv(&self, audio: &Tensor) -> Result<(Tensor, Tensor)> {
        let kv = self
            .kv
            .as_ref()
            .ok_or_else(|| SpeechError::Model("cross-attention without key/value weights".into()))?
            .forward(audio)?;
        let d = kv.dim(D::Minus1)? / 2;
        Ok((
            self.split_heads(&kv.narrow(D::Minus1, 0, d)?)?,
            self.split_heads(&kv.narrow(D::Minus1, d, d)?)?,
        ))
    }

    /// Cross-attention for `b` sequences against one audio window's keys and values
    /// ([1, h, frames, dh]): the sequences' queries are stacked as extra query positions of
    /// a single batch, so the audio's keys and values are read once, never copied per beam.
    fn cross_attend(&self, x: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let q = self.split_heads(&self.qkv_or_q.forward(x)?)?;
        let (b, h, n, dh) = q.dims4()?;
        if b == 1 || k.dim(0)? != 1 {
            return self.attend(&q, k, v, None);
        }
        let stacked = q
            .permute((1, 0, 2, 3))?
            .contiguous()?
            .reshape((1, h, b * n, dh))?;
        let out = Self::weigh(&stacked, k, v, None)?
            .reshape((h, b, n, dh))?
            .permute((1, 0, 2, 3))?
            .contiguous()?;
        Ok(self.out.forward(&Self::merge_heads(&out)?)?)
    }
}
