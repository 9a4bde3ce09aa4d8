//! Reads a CTranslate2 `model.bin` directly: a version, the spec name and revision, then
//! named variables (shape, dtype, raw little-endian bytes), then aliases.
//!
//! Only the container is interpreted here; [`crate::whisper`] knows what the names mean.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::SpeechError;

/// CTranslate2's data types, numbered as in its `DataType` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl Ct2Dtype {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Ct2Dtype::F32,
            1 => Ct2Dtype::I8,
            2 => Ct2Dtype::I16,
            3 => Ct2Dtype::I32,
            4 => Ct2Dtype::F16,
            5 => Ct2Dtype::BF16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Ct2Dtype::I8 => 1,
            Ct2Dtype::I16 | Ct2Dtype::F16 | Ct2Dtype::BF16 => 2,
            Ct2Dtype::F32 | Ct2Dtype::I32 => 4,
        }
    }
}

/// One stored variable.
#[derive(Debug, Clone)]
pub struct Variable {
    pub shape: Vec<usize>,
    pub dtype: Ct2Dtype,
    pub data: Vec<u8>,
}

impl Variable {
    /// As an f32 tensor on `device`. int8 weights need their scale: see [`Ct2Model::tensor`].
    fn to_f32(&self, device: &Device) -> Result<Tensor, SpeechError> {
        let dtype = match self.dtype {
            Ct2Dtype::F32 => DType::F32,
            Ct2Dtype::F16 => DType::F16,
            Ct2Dtype::BF16 => DType::BF16,
            Ct2Dtype::I8 | Ct2Dtype::I16 | Ct2Dtype::I32 => {
                let values = self.integers();
                return Ok(Tensor::from_vec(
                    values.into_iter().map(|v| v as f32).collect::<Vec<_>>(),
                    self.shape.as_slice(),
                    device,
                )?);
            }
        };
        Ok(
            Tensor::from_raw_buffer(&self.data, dtype, &self.shape, device)?
                .to_dtype(DType::F32)?,
        )
    }

    fn integers(&self) -> Vec<i64> {
        match self.dtype {
            Ct2Dtype::I8 => self.data.iter().map(|&b| i64::from(b as i8)).collect(),
            Ct2Dtype::I16 => self
                .data
                .chunks_exact(2)
                .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Ct2Dtype::I32 => self
                .data
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The single value of a scalar setting (`*/num_heads`, `decoder/pre_norm`, …).
    pub fn scalar(&self) -> Option<i64> {
        match self.integers().as_slice() {
            [v] => Some(*v),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Ct2Model {
    pub binary_version: u32,
    pub spec: String,
    pub revision: u32,
    variables: HashMap<String, Variable>,
    aliases: HashMap<String, String>,
}

impl Ct2Model {
    pub fn open(path: &Path) -> Result<Self, SpeechError> {
        let bytes = std::fs::read(path)
            .map_err(|e| SpeechError::Model(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&bytes)
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, SpeechError> {
        let mut r = Reader { bytes, pos: 0 };
        let binary_version = r.u32()?;
        if !(3..=6).contains(&binary_version) {
            return Err(SpeechError::Model(format!(
                "unsupported CTranslate2 model version {binary_version} (expected 3 to 6)"
            )));
        }
        let spec = r.string()?;
        let revision = r.u32()?;
        let count = r.u32()? as usize;
        let mut variables = HashMap::with_capacity(count);
        for _ in 0..count {
            let name = r.string()?;
            let rank = r.u8()? as usize;
            let shape = (0..rank)
                .map(|_| r.u32().map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let code = r.u8()?;
            let dtype = Ct2Dtype::from_code(code)
                .ok_or_else(|| SpeechError::Model(format!("{name}: unknown dtype {code}")))?;
            let len = r.u32()? as usize;
            let expected = shape.iter().product::<usize>().max(1) * dtype.size();
            if len != expected {
                return Err(SpeechError::Model(format!(
                    "{name}: {len} bytes for shape {shape:?} of {dtype:?} (expected {expected})"
                )));
            }
            let data = r.take(len)?.to_vec();
            variables.insert(name, Variable { shape, dtype, data });
        }
        let mut aliases = HashMap::new();
        if r.pos < bytes.len() {
            let n = r.u32()?;
            for _ in 0..n {
                let alias = r.string()?;
                let target = r.string()?;
                aliases.insert(alias, target);
            }
        }
        Ok(Ct2Model {
            binary_version,
            spec,
            revision,
            variables,
            aliases,
        })
    }

    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables
            .get(name)
            .or_else(|| self.aliases.get(name).and_then(|t| self.variables.get(t)))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.variables.keys().map(String::as_str)
    }

    pub fn scalar(&self, name: &str) -> Option<i64> {
        self.variable(name).and_then(Variable::scalar)
    }

    /// A weight as f32. An int8-quantized weight is dequantized with its per-row
    /// `<name>_scale` (CTranslate2 stores `int8 = round(weight * scale)`).
    pub fn tensor(&self, name: &str, device: &Device) -> Result<Tensor, SpeechError> {
        let var = self
            .variable(name)
            .ok_or_else(|| SpeechError::Model(format!("the model has no variable {name}")))?;
        let t = var.to_f32(device)?;
        if var.dtype == Ct2Dtype::I8 && var.shape.len() == 2 {
            let scale_name = format!("{name}_scale");
            let scale = self
                .variable(&scale_name)
                .ok_or_else(|| {
                    SpeechError::Model(format!("{name} is int8 but {scale_name} is missing"))
                })?
                .to_f32(device)?;
            return Ok(t.broadcast_div(&scale.reshape((var.shape[0], 1))?)?);
        }
        Ok(t)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SpeechError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| {
                SpeechError::Model(format!("model file truncated at byte {}", self.pos))
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, SpeechError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, SpeechError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, SpeechError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A u16 byte length, then the bytes, the last being a NUL.
    fn string(&mut self) -> Result<String, SpeechError> {
        let len = self.u16()? as usize;
        let raw = self.take(len)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec())
            .map_err(|_| SpeechError::Model("a name in the model file is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    /// A tiny model file written by hand, byte by byte, as CTranslate2 lays it out.
    fn sample() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        string(&mut b, "WhisperSpec");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        string(&mut b, "w");
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.push(4);
        b.extend_from_slice(&8u32.to_le_bytes());
        for v in [1.0f32, -2.0, 0.5, 4.0] {
            b.extend_from_slice(&half_bits(v).to_le_bytes());
        }
        string(&mut b, "q");
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(1);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&[20u8, (-10i8) as u8]);
        string(&mut b, "q_scale");
        b.push(1);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.push(0);
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&10f32.to_le_bytes());
        b.extend_from_slice(&5f32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        string(&mut b, "w_alias");
        string(&mut b, "w");
        b
    }

    fn half_bits(v: f32) -> u16 {
        // Exact for the values used: sign, exponent, mantissa of small powers of two and halves.
        let bits = v.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
        let mant = ((bits >> 13) & 0x3ff) as u16;
        sign | ((exp as u16) << 10) | mant
    }

    #[test]
    fn parses_the_container_and_converts_dtypes() {
        let model = Ct2Model::parse(&sample()).unwrap();
        assert_eq!(
            (model.binary_version, model.spec.as_str(), model.revision),
            (6, "WhisperSpec", 3)
        );
        let w = model.tensor("w_alias", &Device::Cpu).unwrap();
        assert_eq!(w.dims(), &[2, 2]);
        assert_eq!(
            w.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, -2.0], vec![0.5, 4.0]]
        );
        let q = model.tensor("q", &Device::Cpu).unwrap();
        assert_eq!(
            q.to_vec2::<f32>().unwrap(),
            vec![vec![2.0], vec![-2.0]],
            "int8 / scale"
        );
        assert!(model.tensor("missing", &Device::Cpu).is_err());
    }

    #[test]
    fn truncated_or_foreign_files_are_errors_not_panics() {
        let good = sample();
        for cut in [0, 3, 10, 30, good.len() - 5] {
            assert!(Ct2Model::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Ct2Model::parse(b"RIFF\x00\x00\x00\x00WAVE").is_err());
    }
}
