//! Matrix products where the left side has only a few rows: every decoder step (one row
//! per beam) multiplies a handful of vectors by large weight matrices. candle's general
//! matmul repacks the whole weight matrix on every call, which for a 5-row input costs more
//! than the product itself (the 51,864-wide vocabulary projection is 80 MB of f32). Here the
//! weights are kept once more as f16 (the precision the model ships in, so nothing is lost,
//! and half the memory traffic per step), row-major as stored (`[out, in]`), and read four
//! output rows at a time so each input chunk is loaded once per four rows, spread over
//! rayon's threads.

use candle_core::{D, DType, Tensor};
use half::f16;
use rayon::prelude::*;

/// What a weight matrix may hold: f16 weights, f32 activations (attention keys/values).
pub trait Element: Copy + Send + Sync {
    fn to_f32(self) -> f32;
}

impl Element for f32 {
    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for f16 {
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

/// A weight matrix `[rows, cols]` in f16, row-major, read in place by the kernel.
pub struct HalfMatrix {
    values: Tensor,
    rows: usize,
    cols: usize,
}

impl HalfMatrix {
    pub fn new(weights: &Tensor) -> candle_core::Result<Self> {
        let (rows, cols) = weights.dims2()?;
        Ok(HalfMatrix {
            values: weights.to_dtype(DType::F16)?.contiguous()?,
            rows,
            cols,
        })
    }

    /// The matrix as a tensor (f16), e.g. for looking up embedding rows.
    pub fn tensor(&self) -> &Tensor {
        &self.values
    }
}

/// Inputs with more rows than this go through candle's blocked matmul, which wins once the
/// repacking is amortised over many rows (the encoder, a window's prompt).
pub const MAX_ROWS: usize = 16;

/// Output rows per parallel task: big enough to amortise scheduling, small enough that both
/// threads get work on the narrowest projections (384 outputs).
const ROWS_PER_TASK: usize = 256;

/// `x · wᵀ (+ bias)` for `x` of shape `[.., in]` with at most [`MAX_ROWS`] rows once the
/// leading dimensions are flattened; `w` is `[out, in]`. `None` when the shapes call for
/// the general path.
pub fn linear(
    x: &Tensor,
    w: &HalfMatrix,
    bias: Option<&Tensor>,
) -> candle_core::Result<Option<Tensor>> {
    let k = x.dim(D::Minus1)?;
    let m = x.elem_count() / k.max(1);
    let n = w.rows;
    if m == 0 || m > MAX_ROWS || w.cols != k {
        return Ok(None);
    }
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let (storage, layout) = w.values.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        return Ok(None);
    };
    let weights = &cpu.as_slice::<f16>()?[layout.start_offset()..][..n * k];
    let mut transposed = vec![0f32; n * m];
    transposed
        .par_chunks_mut(ROWS_PER_TASK * m)
        .enumerate()
        .for_each(|(task, out)| {
            let first = task * ROWS_PER_TASK;
            let rows = out.len() / m;
            dot_rows(&weights[first * k..(first + rows) * k], k, &xs, m, out);
        });
    drop(storage);
    let mut out = vec![0f32; m * n];
    for (j, column) in transposed.chunks_exact(m).enumerate() {
        for (b, value) in column.iter().enumerate() {
            out[b * n + j] = *value;
        }
    }
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = n;
    }
    let y = Tensor::from_vec(out, dims, x.device())?;
    Ok(Some(match bias {
        Some(bias) => y.broadcast_add(bias)?,
        None => y,
    }))
}

/// One decoder step's cross-attention: `queries` `[m, heads, 1, dh]` (one row per beam)
/// against one audio window's `keys` `[1, heads, frames, dh]` and transposed `values`
/// `[heads, dh, frames]`, all read in place. Returns `[m, 1, heads · dh]`, the heads
/// merged; `None` when the shapes call for the general path.
pub fn cross_attention(
    queries: &Tensor,
    keys: &Tensor,
    values_t: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    let (m, heads, n, dh) = queries.dims4()?;
    let (_, _, frames, _) = keys.dims4()?;
    if n != 1 || m > MAX_ROWS || !keys.is_contiguous() || !values_t.is_contiguous() {
        return Ok(None);
    }
    let q: Vec<f32> = queries.flatten_all()?.to_vec1()?;
    let (k_storage, k_layout) = keys.storage_and_layout();
    let (v_storage, v_layout) = values_t.storage_and_layout();
    let (candle_core::Storage::Cpu(k_cpu), candle_core::Storage::Cpu(v_cpu)) =
        (&*k_storage, &*v_storage)
    else {
        return Ok(None);
    };
    let k_all = &k_cpu.as_slice::<f32>()?[k_layout.start_offset()..][..heads * frames * dh];
    let v_all = &v_cpu.as_slice::<f32>()?[v_layout.start_offset()..][..heads * dh * frames];
    let scale = 1.0 / (dh as f32).sqrt();
    let per_head: Vec<Vec<f32>> = (0..heads)
        .into_par_iter()
        .map(|h| {
            let q_h: Vec<f32> = (0..m)
                .flat_map(|b| q[(b * heads + h) * dh..][..dh].iter().map(|v| v * scale))
                .collect();
            let mut scores = vec![0f32; frames * m];
            dot_rows(
                &k_all[h * frames * dh..][..frames * dh],
                dh,
                &q_h,
                m,
                &mut scores,
            );
            let mut weights = vec![0f32; m * frames];
            for b in 0..m {
                let row = &mut weights[b * frames..][..frames];
                for (f, w) in row.iter_mut().enumerate() {
                    *w = scores[f * m + b];
                }
                softmax_in_place(row);
            }
            let mut out = vec![0f32; dh * m];
            dot_rows(
                &v_all[h * dh * frames..][..dh * frames],
                frames,
                &weights,
                m,
                &mut out,
            );
            out
        })
        .collect();
    drop((k_storage, v_storage));
    let mut merged = vec![0f32; m * heads * dh];
    for (h, out) in per_head.iter().enumerate() {
        for d in 0..dh {
            for b in 0..m {
                merged[(b * heads + h) * dh + d] = out[d * m + b];
            }
        }
    }
    Ok(Some(Tensor::from_vec(
        merged,
        (m, 1, heads * dh),
        queries.device(),
    )?))
}

/// One decoder step's self-attention: `queries` `[m, heads, 1, dh]` against each
/// sequence's own cached keys and values, laid out `[m, heads, capacity, dh]` with positions
/// `0..len` filled (see `KvCache`). Returns `[m, 1, heads · dh]`, the heads merged; `None`
/// when the shapes call for the general path.
pub fn self_attention(
    queries: &Tensor,
    keys: &[f32],
    values: &[f32],
    capacity: usize,
    len: usize,
) -> candle_core::Result<Option<Tensor>> {
    let (m, heads, n, dh) = queries.dims4()?;
    if n != 1 || m > MAX_ROWS || keys.len() < m * heads * capacity * dh || len > capacity {
        return Ok(None);
    }
    let q: Vec<f32> = queries.flatten_all()?.to_vec1()?;
    let scale = 1.0 / (dh as f32).sqrt();
    // Row `r` = sequence `r / heads`, head `r % heads`: the layout of q, the cache and the
    // result alike.
    let mut merged = vec![0f32; m * heads * dh];
    merged.par_chunks_mut(dh).enumerate().for_each(|(r, out)| {
        let q_r: Vec<f32> = q[r * dh..][..dh].iter().map(|v| v * scale).collect();
        let start = r * capacity * dh;
        let mut weights = vec![0f32; len];
        dot_rows(&keys[start..][..len * dh], dh, &q_r, 1, &mut weights);
        softmax_in_place(&mut weights);
        for (t, w) in weights.iter().enumerate() {
            for (o, v) in out.iter_mut().zip(&values[start + t * dh..][..dh]) {
                *o += w * v;
            }
        }
    });
    Ok(Some(Tensor::from_vec(
        merged,
        (m, 1, heads * dh),
        queries.device(),
    )?))
}

fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        total += *v;
    }
    for v in row.iter_mut() {
        *v /= total;
    }
}

/// `out[j * m + b] = w[j] · x[b]` for every row `j` of `w` (`[rows, k]`) and row `b` of `x`
/// (`[m, k]`). Uses AVX2/FMA/F16C when the CPU has them (checked at run time, so one binary
/// serves every x86-64 machine); otherwise the portable loop.
pub fn dot_rows<T: avx2::Load>(w: &[T], k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
    {
        // SAFETY: the CPU was just checked for the features the function is compiled for.
        unsafe { avx2::dot_rows(w, k, x, m, out) };
        return;
    }
    dot_rows_portable(w, k, x, m, out);
}

fn dot_rows_portable<T: Element>(w: &[T], k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    for (j, row) in w.chunks_exact(k).enumerate() {
        for (b, xb) in x.chunks_exact(k).take(m).enumerate() {
            out[j * m + b] = row.iter().zip(xb).map(|(a, b)| a.to_f32() * b).sum();
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx2 {
    pub trait Load: super::Element {}
    impl<T: super::Element> Load for T {}
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Element, f16};
    use std::arch::x86_64::{
        __m128i, __m256, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_loadu_si128, _mm_movehl_ps,
        _mm_shuffle_ps, _mm256_castps256_ps128, _mm256_cvtph_ps, _mm256_extractf128_ps,
        _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
    };

    const LANES: usize = 8;

    /// Eight lanes as f32, from an element type the kernel reads.
    pub trait Load: Element {
        /// # Safety
        /// The CPU must support AVX2 and F16C.
        unsafe fn load(values: &[Self], at: usize) -> __m256;
    }

    impl Load for f32 {
        #[target_feature(enable = "avx2")]
        unsafe fn load(values: &[f32], at: usize) -> __m256 {
            let lanes = &values[at..at + LANES];
            // SAFETY: `lanes` holds exactly eight f32s; the load is unaligned.
            unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
        }
    }

    impl Load for f16 {
        #[target_feature(enable = "avx2,f16c")]
        unsafe fn load(values: &[f16], at: usize) -> __m256 {
            let lanes = &values[at..at + LANES];
            // SAFETY: `lanes` holds exactly eight f16s (16 bytes); the load is unaligned.
            _mm256_cvtph_ps(unsafe { _mm_loadu_si128(lanes.as_ptr().cast::<__m128i>()) })
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn sum(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)))
    }

    /// Four weight rows per pass, so each chunk of an input row is loaded once for four
    /// products, with four independent accumulators to hide the FMA latency.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_rows<T: Load>(w: &[T], k: usize, x: &[f32], m: usize, out: &mut [f32]) {
        let rows = w.len() / k;
        let body = k - k % LANES;
        let mut j = 0;
        while j + 4 <= rows {
            let block = &w[j * k..(j + 4) * k];
            for b in 0..m {
                let xb = &x[b * k..(b + 1) * k];
                let mut acc = [_mm256_setzero_ps(); 4];
                for c in (0..body).step_by(LANES) {
                    // SAFETY (both loads): this function's features include the loads'.
                    let xv = unsafe { f32::load(xb, c) };
                    for (q, lanes) in acc.iter_mut().enumerate() {
                        let wv = unsafe { T::load(block, q * k + c) };
                        *lanes = _mm256_fmadd_ps(wv, xv, *lanes);
                    }
                }
                for (q, lanes) in acc.iter().enumerate() {
                    let row = &block[q * k..(q + 1) * k];
                    let tail: f32 = (body..k).map(|i| row[i].to_f32() * xb[i]).sum();
                    out[(j + q) * m + b] = sum(*lanes) + tail;
                }
            }
            j += 4;
        }
        super::dot_rows_portable(&w[j * k..], k, x, m, &mut out[j * m..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn close(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .expect("difference")
    }

    #[test]
    fn matches_candle_matmul_for_odd_shapes() {
        let device = Device::Cpu;
        // 389 outputs (not a multiple of 4 or the task size), 61 inputs (not a multiple
        // of 8), batches of 1, 5 and 16 rows with leading dimensions.
        let w = Tensor::randn(0f32, 1.0, (389, 61), &device).expect("w");
        let bias = Tensor::randn(0f32, 1.0, 389, &device).expect("bias");
        for rows in [1usize, 5, 16] {
            let x = Tensor::randn(0f32, 1.0, (rows, 1, 61), &device).expect("x");
            let ours = linear(&x, &HalfMatrix::new(&w).expect("half"), Some(&bias))
                .expect("product")
                .expect("few rows take this path");
            let theirs = x
                .broadcast_matmul(&w.t().expect("t"))
                .and_then(|y| y.broadcast_add(&bias))
                .expect("candle");
            assert_eq!(ours.dims(), &[rows, 1, 389]);
            // The weights went through f16: compare against f16-rounded weights.
            let rounded = w.to_dtype(DType::F16).and_then(|w| w.to_dtype(DType::F32));
            let theirs_rounded = x
                .broadcast_matmul(&rounded.and_then(|w| w.t()).expect("t"))
                .and_then(|y| y.broadcast_add(&bias))
                .expect("candle");
            assert!(close(&ours, &theirs_rounded) < 1e-3, "rows {rows}");
            assert!(close(&ours, &theirs) < 0.1, "rows {rows}");
        }
    }

    #[test]
    fn cross_attention_matches_candle() {
        let device = Device::Cpu;
        let (beams, heads, frames, dh) = (5, 3, 37, 16);
        let q = Tensor::randn(0f32, 1.0, (beams, heads, 1, dh), &device).expect("q");
        let k = Tensor::randn(0f32, 1.0, (1, heads, frames, dh), &device).expect("k");
        let v = Tensor::randn(0f32, 1.0, (1, heads, frames, dh), &device).expect("v");
        let v_t = v
            .squeeze(0)
            .and_then(|v| v.transpose(1, 2))
            .and_then(|v| v.contiguous())
            .expect("v_t");
        let ours = cross_attention(&q, &k, &v_t)
            .expect("attention")
            .expect("one step takes this path");
        let scores = q
            .broadcast_matmul(&k.transpose(2, 3).expect("kt"))
            .and_then(|s| s / (dh as f64).sqrt())
            .expect("scores");
        let weights = candle_nn::ops::softmax_last_dim(&scores).expect("softmax");
        let theirs = weights
            .broadcast_matmul(&v)
            .and_then(|o| o.transpose(1, 2))
            .and_then(|o| o.reshape((beams, 1, heads * dh)))
            .expect("out");
        assert!(close(&ours, &theirs) < 1e-4);
    }

    #[test]
    fn self_attention_matches_candle() {
        let device = Device::Cpu;
        let (beams, heads, len, capacity, dh) = (5, 3, 11, 14, 16);
        let q = Tensor::randn(0f32, 1.0, (beams, heads, 1, dh), &device).expect("q");
        let k = Tensor::randn(0f32, 1.0, (beams, heads, len, dh), &device).expect("k");
        let v = Tensor::randn(0f32, 1.0, (beams, heads, len, dh), &device).expect("v");
        // Lay k and v out with spare capacity, as the cache does.
        let spare =
            Tensor::zeros((beams, heads, capacity - len, dh), DType::F32, &device).expect("zeros");
        let padded = |t: &Tensor| -> Vec<f32> {
            Tensor::cat(&[t, &spare], 2)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .expect("padded")
        };
        let ours = self_attention(&q, &padded(&k), &padded(&v), capacity, len)
            .expect("attention")
            .expect("one step takes this path");
        let scores = q
            .matmul(&k.transpose(2, 3).expect("kt"))
            .and_then(|s| s / (dh as f64).sqrt())
            .expect("scores");
        let weights = candle_nn::ops::softmax_last_dim(&scores).expect("softmax");
        let theirs = weights
            .matmul(&v)
            .and_then(|o| o.transpose(1, 2))
            .and_then(|o| o.reshape((beams, 1, heads * dh)))
            .expect("out");
        assert!(close(&ours, &theirs) < 1e-4);
    }

    #[test]
    fn many_rows_or_mismatched_widths_take_the_general_path() {
        let device = Device::Cpu;
        let w =
            HalfMatrix::new(&Tensor::randn(0f32, 1.0, (8, 8), &device).expect("w")).expect("half");
        let x = Tensor::randn(0f32, 1.0, (MAX_ROWS + 1, 8), &device).expect("x");
        assert!(linear(&x, &w, None).expect("ok").is_none());
        let x = Tensor::randn(0f32, 1.0, (2, 9), &device).expect("x");
        assert!(linear(&x, &w, None).expect("ok").is_none());
    }

    #[test]
    fn portable_and_simd_loops_agree() {
        let w: Vec<f32> = (0..7 * 19).map(|i| (i as f32 * 0.37).sin()).collect();
        let x: Vec<f32> = (0..3 * 19).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut plain = vec![0f32; 7 * 3];
        let mut dispatched = vec![0f32; 7 * 3];
        dot_rows_portable(&w, 19, &x, 3, &mut plain);
        dot_rows(&w, 19, &x, 3, &mut dispatched);
        for (a, b) in plain.iter().zip(&dispatched) {
            assert!((a - b).abs() < 1e-5);
        }
        let expected: f32 = (0..19).map(|i| w[2 * 19 + i] * x[19 + i]).sum();
        assert!((plain[2 * 3 + 1] - expected).abs() < 1e-5);
        let halves: Vec<f16> = w.iter().map(|v| f16::from_f32(*v)).collect();
        let mut from_halves = vec![0f32; 7 * 3];
        dot_rows(&halves, 19, &x, 3, &mut from_halves);
        for (a, b) in plain.iter().zip(&from_halves) {
            assert!((a - b).abs() < 1e-2);
        }
    }
}
