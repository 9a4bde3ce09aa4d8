//! Audio arriving in pieces over a connection, turned into 16 kHz mono samples as it
//! comes: raw PCM in the encodings real-time clients send, or a WAV file streamed as it is
//! read (header first). Pieces may split samples and headers anywhere.

use crate::SpeechError;
use crate::audio::{RATES, To16k};

/// How raw samples are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    PcmS16le,
    PcmF32le,
    /// G.711 µ-law, 8 bits a sample.
    Mulaw,
}

impl Encoding {
    fn bytes(self) -> usize {
        match self {
            Encoding::PcmS16le => 2,
            Encoding::PcmF32le => 4,
            Encoding::Mulaw => 1,
        }
    }

    fn sample(self, bytes: &[u8]) -> f32 {
        match self {
            Encoding::PcmS16le => f32::from(i16::from_le_bytes([bytes[0], bytes[1]])) / 32768.0,
            Encoding::PcmF32le => {
                let v = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                if v.is_finite() {
                    v.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            }
            Encoding::Mulaw => mulaw(bytes[0]),
        }
    }
}

/// What a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    Raw {
        encoding: Encoding,
        rate: u32,
    },
    /// A WAV file, header included.
    Wav,
}

/// Longest WAV header (all chunks before `data`) we wait for.
const MAX_HEADER: usize = 64 * 1024;

enum State {
    /// Bytes of a WAV header not yet complete.
    Header(Vec<u8>),
    Samples {
        encoding: Encoding,
        channels: usize,
        resampler: Box<To16k>,
        /// The bytes of a frame split across pieces.
        carry: Vec<u8>,
    },
}

pub struct StreamDecoder {
    state: State,
}

impl StreamDecoder {
    pub fn new(format: StreamFormat) -> Result<Self, SpeechError> {
        let state = match format {
            StreamFormat::Raw { encoding, rate } => samples_state(encoding, 1, rate)?,
            StreamFormat::Wav => State::Header(Vec::new()),
        };
        Ok(StreamDecoder { state })
    }

    /// Decodes a piece; returns the 16 kHz samples it completed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<f32>, SpeechError> {
        if let State::Header(header) = &mut self.state {
            header.extend_from_slice(bytes);
            let Some((encoding, channels, rate, data_at)) = parse_wav_header(header)? else {
                if header.len() > MAX_HEADER {
                    return Err(SpeechError::Audio(
                        "no WAV data chunk in the first 64 KiB of the stream".into(),
                    ));
                }
                return Ok(Vec::new());
            };
            let rest = header.split_off(data_at);
            self.state = samples_state(encoding, channels, rate)?;
            return self.push(&rest);
        }
        let State::Samples {
            encoding,
            channels,
            resampler,
            carry,
        } = &mut self.state
        else {
            return Ok(Vec::new());
        };
        let frame = encoding.bytes() * *channels;
        carry.extend_from_slice(bytes);
        let whole = carry.len() / frame * frame;
        let mono: Vec<f32> = carry[..whole]
            .chunks_exact(frame)
            .map(|f| {
                f.chunks_exact(encoding.bytes())
                    .map(|b| encoding.sample(b))
                    .sum::<f32>()
                    / *channels as f32
            })
            .collect();
        carry.drain(..whole);
        resampler.push(&mono)?;
        Ok(resampler.take())
    }

    /// The samples still inside the resampler.
    pub fn finish(self) -> Result<Vec<f32>, SpeechError> {
        match self.state {
            State::Header(_) => Ok(Vec::new()),
            State::Samples { resampler, .. } => resampler.finish(),
        }
    }
}

fn samples_state(encoding: Encoding, channels: usize, rate: u32) -> Result<State, SpeechError> {
    if !RATES.contains(&rate) {
        return Err(SpeechError::Audio(format!(
            "sample rate {rate} Hz is not supported ({}–{} Hz)",
            RATES.start(),
            RATES.end()
        )));
    }
    if !(1..=8).contains(&channels) {
        return Err(SpeechError::Audio(format!(
            "{channels} channels are not supported"
        )));
    }
    Ok(State::Samples {
        encoding,
        channels,
        resampler: Box::new(To16k::new(rate)?),
        carry: Vec::new(),
    })
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `None` while the header is incomplete; else the format and where the samples start.
fn parse_wav_header(b: &[u8]) -> Result<Option<(Encoding, usize, u32, usize)>, SpeechError> {
    if b.len() < 12 {
        return Ok(None);
    }
    if &b[..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err(SpeechError::Audio(
            "a streamed file must be WAV (RIFF/WAVE); send other formats as raw PCM".into(),
        ));
    }
    let mut at = 12;
    let mut format = None;
    loop {
        if b.len() < at + 8 {
            return Ok(None);
        }
        let id = &b[at..at + 4];
        let size = u32_at(b, at + 4) as usize;
        let body = at + 8;
        if id == b"data" {
            let Some((encoding, channels, rate)) = format else {
                return Err(SpeechError::Audio("WAV data before its fmt chunk".into()));
            };
            return Ok(Some((encoding, channels, rate, body)));
        }
        if body.saturating_add(size) > MAX_HEADER {
            return Err(SpeechError::Audio("WAV header chunk too large".into()));
        }
        if b.len() < body + size {
            return Ok(None);
        }
        if id == b"fmt " {
            if size < 16 {
                return Err(SpeechError::Audio("WAV fmt chunk too short".into()));
            }
            let mut tag = u16_at(b, body);
            if tag == 0xFFFE && size >= 26 {
                tag = u16_at(b, body + 24);
            }
            let channels = usize::from(u16_at(b, body + 2));
            let rate = u32_at(b, body + 4);
            let bits = u16_at(b, body + 14);
            let encoding = match (tag, bits) {
                (1, 16) => Encoding::PcmS16le,
                (3, 32) => Encoding::PcmF32le,
                (7, 8) => Encoding::Mulaw,
                _ => {
                    return Err(SpeechError::Audio(format!(
                        "WAV format {tag} with {bits}-bit samples is not supported \
                         (16-bit PCM, 32-bit float or µ-law)"
                    )));
                }
            };
            format = Some((encoding, channels, rate));
        }
        // Chunks are padded to an even length.
        at = body + size + (size & 1);
    }
}

fn mulaw(byte: u8) -> f32 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = (b >> 4) & 0x07;
    let mantissa = b & 0x0F;
    let magnitude = ((i32::from(mantissa) << 3) + 0x84) << exponent;
    let value = if sign != 0 {
        0x84 - magnitude
    } else {
        magnitude - 0x84
    };
    value as f32 / 32768.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(samples: &[i16], rate: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + samples.len() as u32 * 2).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2).to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(samples.len() as u32 * 2).to_le_bytes());
        for s in samples {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    #[test]
    fn a_wav_split_anywhere_decodes_whole() {
        let samples: Vec<i16> = (0..16_000).map(|i| ((i % 100) * 300) as i16).collect();
        let bytes = wav(&samples, 16_000);
        for piece in [1, 3, 7, 4096] {
            let mut decoder = StreamDecoder::new(StreamFormat::Wav).unwrap();
            let mut out = Vec::new();
            for chunk in bytes.chunks(piece) {
                out.extend(decoder.push(chunk).unwrap());
            }
            out.extend(decoder.finish().unwrap());
            assert_eq!(out.len(), samples.len(), "piece {piece}");
            assert!((out[5] - f32::from(samples[5]) / 32768.0).abs() < 1e-6);
        }
    }

    #[test]
    fn raw_audio_at_other_rates_is_resampled() {
        let mut decoder = StreamDecoder::new(StreamFormat::Raw {
            encoding: Encoding::PcmF32le,
            rate: 24_000,
        })
        .unwrap();
        let second: Vec<u8> = (0..24_000).flat_map(|_| 0.25f32.to_le_bytes()).collect();
        let mut out = decoder.push(&second).unwrap();
        out.extend(decoder.finish().unwrap());
        assert_eq!(out.len(), 16_000);
    }

    #[test]
    fn bad_streams_are_refused() {
        let mut decoder = StreamDecoder::new(StreamFormat::Wav).unwrap();
        assert!(
            decoder
                .push(b"<html><body>not audio</body></html>")
                .is_err()
        );
        let raw = StreamDecoder::new(StreamFormat::Raw {
            encoding: Encoding::PcmS16le,
            rate: 1_000_000,
        });
        assert!(raw.is_err());
        let mut endless = StreamDecoder::new(StreamFormat::Wav).unwrap();
        let mut header = b"RIFF\0\0\0\0WAVE".to_vec();
        header.extend_from_slice(b"junk");
        header.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(endless.push(&header).is_err());
    }

    #[test]
    fn mulaw_decodes_to_the_expected_levels() {
        assert!(mulaw(0xFF).abs() < 1e-3);
        assert!(mulaw(0x80) > 0.9);
        assert!(mulaw(0x00) < -0.9);
    }
}
