//! Whisper's encoder and decoder on candle, with weights taken straight from a
//! CTranslate2 model (fused attention projections kept fused: one matmul instead of three)
//! and a key/value cache for the decoder's self-attention, so each new token costs one
//! position's work rather than the whole sequence's.

use candle_core::{D, DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, Linear};

use crate::SpeechError;
use crate::ct2::Ct2Model;
use crate::few_rows;
use crate::kv_cache::KvCache;
use crate::weights::WeightSource;

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
    qkv_or_q: Dense,
    /// Cross-attention only: fused K,V applied to the encoder output.
    kv: Option<Linear>,
    out: Dense,
    heads: usize,
}

struct EncoderLayer {
    attn_ln: LayerNorm,
    attn: Attention,
    ffn_ln: LayerNorm,
    ffn_in: Dense,
    ffn_out: Dense,
}

struct DecoderLayer {
    self_ln: LayerNorm,
    self_attn: Attention,
    cross_ln: LayerNorm,
    cross_attn: Attention,
    ffn_ln: LayerNorm,
    ffn_in: Dense,
    ffn_out: Dense,
}

pub struct Whisper {
    pub dims: Dims,
    conv1: Conv1d,
    conv2: Conv1d,
    encoder_positions: Tensor,
    encoder_layers: Vec<EncoderLayer>,
    encoder_ln: LayerNorm,
    /// Token embeddings, in f16 as the model ships them; also the output projection.
    embeddings: few_rows::HalfMatrix,
    decoder_positions: Tensor,
    decoder_layers: Vec<DecoderLayer>,
    decoder_ln: LayerNorm,
    device: Device,
}

/// One decoder layer's view of the audio window: keys and values `[1, heads, frames, dh]`,
/// and the values again transposed `[heads, dh, frames]` for the few-rows step.
struct AudioKeys {
    keys: Tensor,
    values: Tensor,
    values_t: Tensor,
}

/// The per-window state of decoding: cross-attention keys/values (from the audio) and
/// the growing self-attention cache, for a batch of sequences (beams).
pub struct DecoderState {
    cross: Vec<AudioKeys>,
    cache: Vec<KvCache>,
    /// How many positions the cache holds.
    pub len: usize,
}

impl DecoderState {
    /// Keeps only the given sequences, in the given order (beam search re-ranking). The
    /// cross-attention keys and values are the same for every sequence (one audio window),
    /// so only the self-attention cache moves.
    pub fn select(&mut self, rows: &[u32]) -> Result<()> {
        self.cache
            .iter_mut()
            .try_for_each(|cache| cache.select(rows))
    }
}

/// A linear layer; in the decoder it also keeps its weights for the few-rows path, which
/// every decoding step takes.
struct Dense {
    linear: Linear,
    few_rows: Option<few_rows::HalfMatrix>,
}

impl Dense {
    fn encoder(linear: Linear) -> Self {
        Dense {
            linear,
            few_rows: None,
        }
    }

    fn decoder(linear: Linear) -> Result<Self> {
        Ok(Dense {
            few_rows: Some(few_rows::HalfMatrix::new(linear.weight())?),
            linear,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(weights) = &self.few_rows
            && let Some(y) = few_rows::linear(x, weights, self.linear.bias())?
        {
            return Ok(y);
        }
        Ok(self.linear.forward(x)?)
    }
}

fn linear(model: &dyn WeightSource, prefix: &str, device: &Device) -> Result<Linear> {
    let weight = model.tensor(&format!("{prefix}/weight"), device)?;
    let bias = match model.shape(&format!("{prefix}/bias")) {
        Some(_) => Some(model.tensor(&format!("{prefix}/bias"), device)?),
        None => None,
    };
    Ok(Linear::new(weight, bias))
}

fn layer_norm(model: &dyn WeightSource, prefix: &str, device: &Device) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        model.tensor(&format!("{prefix}/gamma"), device)?,
        model.tensor(&format!("{prefix}/beta"), device)?,
        1e-5,
    ))
}

fn conv(model: &dyn WeightSource, prefix: &str, stride: usize, device: &Device) -> Result<Conv1d> {
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

fn count_layers(model: &dyn WeightSource, side: &str) -> usize {
    (0..)
        .take_while(|i| {
            model
                .shape(&format!("{side}/layer_{i}/ffn/linear_0/weight"))
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
        Self::from_weights(model, device)
    }

    /// Builds the model from weights under CTranslate2's names (see [`WeightSource`]).
    pub fn from_weights(model: &dyn WeightSource, device: &Device) -> Result<Self> {
        let shape = |name: &str| {
            model
                .shape(name)
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
                        qkv_or_q: Dense::encoder(linear(
                            model,
                            &format!("{p}/self_attention/linear_0"),
                            device,
                        )?),
                        kv: None,
                        out: Dense::encoder(linear(
                            model,
                            &format!("{p}/self_attention/linear_1"),
                            device,
                        )?),
                        heads: dims.encoder_heads,
                    },
                    ffn_ln: layer_norm(model, &format!("{p}/ffn/layer_norm"), device)?,
                    ffn_in: Dense::encoder(linear(model, &format!("{p}/ffn/linear_0"), device)?),
                    ffn_out: Dense::encoder(linear(model, &format!("{p}/ffn/linear_1"), device)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder_layers = (0..dims.decoder_layers)
            .map(|i| {
                let p = format!("decoder/layer_{i}");
                Ok(DecoderLayer {
                    self_ln: layer_norm(model, &format!("{p}/self_attention/layer_norm"), device)?,
                    self_attn: Attention {
                        qkv_or_q: Dense::decoder(linear(
                            model,
                            &format!("{p}/self_attention/linear_0"),
                            device,
                        )?)?,
                        kv: None,
                        out: Dense::decoder(linear(
                            model,
                            &format!("{p}/self_attention/linear_1"),
                            device,
                        )?)?,
                        heads: dims.decoder_heads,
                    },
                    cross_ln: layer_norm(model, &format!("{p}/attention/layer_norm"), device)?,
                    cross_attn: Attention {
                        qkv_or_q: Dense::decoder(linear(
                            model,
                            &format!("{p}/attention/linear_0"),
                            device,
                        )?)?,
                        kv: Some(linear(model, &format!("{p}/attention/linear_1"), device)?),
                        out: Dense::decoder(linear(
                            model,
                            &format!("{p}/attention/linear_2"),
                            device,
                        )?)?,
                        heads: dims.decoder_heads,
                    },
                    ffn_ln: layer_norm(model, &format!("{p}/ffn/layer_norm"), device)?,
                    ffn_in: Dense::decoder(linear(model, &format!("{p}/ffn/linear_0"), device)?)?,
                    ffn_out: Dense::decoder(linear(model, &format!("{p}/ffn/linear_1"), device)?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let embeddings = model.tensor("decoder/embeddings/weight", device)?;
        Ok(Whisper {
            dims,
            conv1: conv(model, "encoder/conv1", 1, device)?,
            conv2: conv(model, "encoder/conv2", 2, device)?,
            encoder_positions: model.tensor("encoder/position_encodings/encodings", device)?,
            encoder_layers,
            encoder_ln: layer_norm(model, "encoder/layer_norm", device)?,
            embeddings: few_rows::HalfMatrix::new(&embeddings)?,
            decoder_positions: model.tensor("decoder/position_encodings/encodings", device)?,
            decoder_layers,
            decoder_ln: layer_norm(model, "decoder/layer_norm", device)?,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `mel`: [batch, n_mels, 2·p] → audio features [batch, p, d_model], p ≤ `audio_ctx`.
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
            cache: self
                .decoder_layers
                .iter()
                .map(|_| {
                    let heads = self.dims.decoder_heads;
                    KvCache::new(heads, self.dims.d_model / heads, self.dims.text_ctx)
                })
                .collect(),
            len: 0,
        })
    }

    /// Feeds `tokens` ([batch, n], continuing the state) and returns the logits of the
    /// last position of each sequence, [batch, vocab].
    pub fn decode_last(&self, tokens: &Tensor, state: &mut DecoderState) -> Result<Tensor> {
        let n = tokens.dim(1)?;
        let x = self.run_decoder(tokens, state, &mut [])?;
        let last = self
            .decoder_ln
            .forward(&x.i((.., n - 1..n, ..))?)?
            .squeeze(1)?;
        self.project(&last)
    }

    /// Teacher-forces one sequence of `tokens` against `audio` ([1, frames, d]) in a single
    /// pass, for word alignment: returns the logits of the positions in `logit_rows`,
    /// [rows, vocab] (the projection is most of the pass's cost, so only rows wanted are
    /// made), and for each decoder layer whose `scores` slot is `Some` on entry, that
    /// layer's cross-attention scores before the softmax, [heads, n, frames] (OpenAI's
    /// `QKs`; the softmax is taken later, over the window's audio frames only).
    pub fn forced(
        &self,
        audio: &Tensor,
        tokens: &[u32],
        logit_rows: std::ops::Range<usize>,
        scores: &mut [Option<Tensor>],
    ) -> Result<Tensor> {
        let mut state = self.start(audio)?;
        let ids = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let x = self.run_decoder(&ids, &mut state, scores)?;
        let (first, end) = (logit_rows.start, logit_rows.end.min(tokens.len()));
        if first >= end {
            return Err(SpeechError::Model(
                "no logits asked of the forced pass".into(),
            ));
        }
        let hidden = self
            .decoder_ln
            .forward(&x.squeeze(0)?.narrow(0, first, end - first)?)?;
        // The vocabulary projection goes through the few-rows kernel a block of rows at a
        // time: it reads the f16 embeddings in place instead of an 80 MB f32 copy.
        let n = hidden.dim(0)?;
        let blocks = (0..n)
            .step_by(few_rows::MAX_ROWS)
            .map(|at| self.project(&hidden.narrow(0, at, few_rows::MAX_ROWS.min(n - at))?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&blocks, 0)?)
    }

    /// Hidden states `[batch, n, d]` (before the final layer norm) after every decoder
    /// layer. A layer whose slot in `scores` is `Some` (on entry) gets it replaced by its
    /// cross-attention scores; `scores` may be shorter than the layer count.
    fn run_decoder(
        &self,
        tokens: &Tensor,
        state: &mut DecoderState,
        scores: &mut [Option<Tensor>],
    ) -> Result<Tensor> {
        let n = tokens.dim(1)?;
        if state.len + n > self.dims.text_ctx {
            return Err(SpeechError::Model("decoder context is full".into()));
        }
        let positions = self.decoder_positions.narrow(0, state.len, n)?;
        let mut x = self
            .embeddings
            .tensor()
            .embedding_lookup(tokens)?
            .to_dtype(DType::F32)?
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
            let cross = match scores.get_mut(i) {
                Some(slot @ Some(_)) => {
                    let (out, qk) = layer.cross_attn.cross_attend_scored(&h, &state.cross[i])?;
                    *slot = Some(qk);
                    out
                }
                _ => layer.cross_attn.cross_attend(&h, &state.cross[i])?,
            };
            x = (x + cross)?;
            let h = layer.ffn_ln.forward(&x)?;
            x = (x + layer
                .ffn_out
                .forward(&layer.ffn_in.forward(&h)?.gelu_erf()?)?)?;
        }
        state.len += n;
        Ok(x)
    }

    /// The output projection (tied to the token embeddings): `[m, d]` → `[m, vocab]`.
    fn project(&self, rows: &Tensor) -> Result<Tensor> {
        match few_rows::linear(rows, &self.embeddings, None)? {
            Some(logits) => Ok(logits),
            None => Ok(rows.matmul(&self.embeddings.tensor().to_dtype(DType::F32)?.t()?)?),
        }
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

    /// Cross-attention of one sequence that also hands back its scores before the
    /// softmax, `[heads, n, frames]`, for word alignment.
    fn cross_attend_scored(&self, x: &Tensor, audio: &AudioKeys) -> Result<(Tensor, Tensor)> {
        let q = self.split_heads(&self.qkv_or_q.forward(x)?)?;
        let scale = 1.0 / (q.dim(D::Minus1)? as f64).sqrt();
        let scores = (q.matmul(&audio.keys.t()?)? * scale)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = self
            .out
            .forward(&Self::merge_heads(&weights.matmul(&audio.values)?)?)?;
        Ok((out, scores.squeeze(0)?))
    }

    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let out = Self::merge_heads(&Self::weigh(q, k, v, mask)?)?;
        self.out.forward(&out)
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
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (q, k, v) = self.qkv(x)?;
        cache.append(&k, &v)?;
        let (keys, values) = cache.slices();
        match few_rows::self_attention(&q, keys, values, cache.capacity(), cache.len())? {
            Some(out) => self.out.forward(&out),
            None => {
                let (k, v) = cache.tensors(x.device())?;
                self.attend(&q, &k, &v, mask)
            }
        }
    }

    fn cross_kv(&self, audio: &Tensor) -> Result<AudioKeys> {
        let kv = self
            .kv
            .as_ref()
            .ok_or_else(|| SpeechError::Model("cross-attention without key/value weights".into()))?
            .forward(audio)?;
        let d = kv.dim(D::Minus1)? / 2;
        let values = self.split_heads(&kv.narrow(D::Minus1, d, d)?)?;
        Ok(AudioKeys {
            keys: self.split_heads(&kv.narrow(D::Minus1, 0, d)?)?,
            values_t: values.squeeze(0)?.transpose(1, 2)?.contiguous()?,
            values,
        })
    }

    /// Cross-attention for `b` sequences against one audio window. A decoding step (one
    /// new position per sequence) reads the keys and values in place; the prompt (many
    /// positions) stacks the sequences' queries as extra positions of a single batch, so
    /// the audio's keys and values are never copied per beam.
    fn cross_attend(&self, x: &Tensor, audio: &AudioKeys) -> Result<Tensor> {
        let q = self.split_heads(&self.qkv_or_q.forward(x)?)?;
        if let Some(out) = few_rows::cross_attention(&q, &audio.keys, &audio.values_t)? {
            return self.out.forward(&out);
        }
        let (k, v) = (&audio.keys, &audio.values);
        let (b, h, n, dh) = q.dims4()?;
        if b == 1 {
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
        self.out.forward(&Self::merge_heads(&out)?)
    }
}
