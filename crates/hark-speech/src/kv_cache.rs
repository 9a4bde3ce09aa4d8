//! The decoder's self-attention cache for a batch of sequences (beams): keys and values of
//! every position decoded so far, in buffers sized for the whole text context up front, so
//! a step writes one position in place instead of concatenating (copying) the whole cache,
//! and re-ranking beams copies only the sequences whose parent changed.

use candle_core::{Device, Tensor};

use crate::SpeechError;

type Result<T> = std::result::Result<T, SpeechError>;

/// Layout: `[batch, heads, capacity, dh]`; positions `0..len` are filled.
pub struct KvCache {
    keys: Vec<f32>,
    values: Vec<f32>,
    batch: usize,
    heads: usize,
    dh: usize,
    capacity: usize,
    len: usize,
}

impl KvCache {
    pub fn new(heads: usize, dh: usize, capacity: usize) -> Self {
        KvCache {
            keys: Vec::new(),
            values: Vec::new(),
            batch: 0,
            heads,
            dh,
            capacity,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The filled keys and values as flat slices with their row stride: row `r`
    /// (sequence `r / heads`, head `r % heads`) starts at `r * capacity * dh`.
    pub fn slices(&self) -> (&[f32], &[f32]) {
        (&self.keys, &self.values)
    }

    /// Appends `n` positions: `keys` and `values` are `[batch, heads, n, dh]`. The first
    /// append fixes the batch size.
    pub fn append(&mut self, keys: &Tensor, values: &Tensor) -> Result<()> {
        let (batch, heads, n, dh) = keys.dims4()?;
        if self.batch == 0 {
            self.batch = batch;
            let size = batch * self.heads * self.capacity * self.dh;
            self.keys = vec![0.0; size];
            self.values = vec![0.0; size];
        }
        if batch != self.batch || heads != self.heads || dh != self.dh {
            return Err(SpeechError::Model(format!(
                "cache holds {}×{}×{}, got {batch}×{heads}×{dh}",
                self.batch, self.heads, self.dh
            )));
        }
        if self.len + n > self.capacity {
            return Err(SpeechError::Model("decoder context is full".into()));
        }
        let new_keys: Vec<f32> = keys.flatten_all()?.to_vec1()?;
        let new_values: Vec<f32> = values.flatten_all()?.to_vec1()?;
        for row in 0..batch * heads {
            let to = (row * self.capacity + self.len) * dh;
            let from = row * n * dh;
            self.keys[to..to + n * dh].copy_from_slice(&new_keys[from..from + n * dh]);
            self.values[to..to + n * dh].copy_from_slice(&new_values[from..from + n * dh]);
        }
        self.len += n;
        Ok(())
    }

    /// The filled part as contiguous tensors `[batch, heads, len, dh]` (for the prompt,
    /// which runs through the general attention once per window).
    pub fn tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        let gather = |buffer: &[f32]| {
            let mut out = Vec::with_capacity(self.batch * self.heads * self.len * self.dh);
            for row in 0..self.batch * self.heads {
                let from = row * self.capacity * self.dh;
                out.extend_from_slice(&buffer[from..from + self.len * self.dh]);
            }
            Tensor::from_vec(out, (self.batch, self.heads, self.len, self.dh), device)
        };
        Ok((gather(&self.keys)?, gather(&self.values)?))
    }

    /// Makes sequence `i` a copy of former sequence `parents[i]`; the batch becomes
    /// `parents.len()`. Sequences that keep their own history are not touched.
    pub fn select(&mut self, parents: &[u32]) -> Result<()> {
        if self.batch == 0 {
            return Ok(());
        }
        if let Some(bad) = parents.iter().find(|p| **p as usize >= self.batch) {
            return Err(SpeechError::Model(format!(
                "no sequence {bad} among {}",
                self.batch
            )));
        }
        let sequence = self.heads * self.capacity * self.dh;
        let filled = self.len * self.dh;
        if parents.len() > self.batch {
            self.keys.resize(parents.len() * sequence, 0.0);
            self.values.resize(parents.len() * sequence, 0.0);
        }
        for buffer in [&mut self.keys, &mut self.values] {
            // Sources that are about to be overwritten are saved first.
            let saved: Vec<(usize, Vec<f32>)> = parents
                .iter()
                .enumerate()
                .filter(|(i, p)| **p as usize != *i)
                .map(|(_, p)| *p as usize)
                .filter(|p| parents.get(*p).is_some_and(|pp| *pp as usize != *p))
                .map(|p| {
                    let heads = (0..self.heads).flat_map(|head| {
                        let from = p * sequence + head * self.capacity * self.dh;
                        buffer[from..from + filled].iter().copied()
                    });
                    (p, heads.collect::<Vec<f32>>())
                })
                .collect();
            for (i, parent) in parents.iter().enumerate() {
                let parent = *parent as usize;
                if parent == i {
                    continue;
                }
                for head in 0..self.heads {
                    let to = i * sequence + head * self.capacity * self.dh;
                    let offset = head * self.capacity * self.dh;
                    match saved.iter().find(|(p, _)| *p == parent) {
                        Some((_, copy)) => buffer[to..to + filled]
                            .copy_from_slice(&copy[head * filled..(head + 1) * filled]),
                        None => buffer.copy_within(
                            parent * sequence + offset..parent * sequence + offset + filled,
                            to,
                        ),
                    }
                }
            }
        }
        self.batch = parents.len();
        self.keys.truncate(self.batch * sequence);
        self.values.truncate(self.batch * sequence);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(batch: usize, heads: usize, n: usize, dh: usize, base: f32) -> Tensor {
        let values: Vec<f32> = (0..batch * heads * n * dh)
            .map(|i| base + i as f32)
            .collect();
        Tensor::from_vec(values, (batch, heads, n, dh), &Device::Cpu).expect("tensor")
    }

    #[test]
    fn appends_in_place_and_reads_back_in_order() {
        let mut cache = KvCache::new(2, 3, 10);
        let first = filled(2, 2, 4, 3, 0.0);
        let second = filled(2, 2, 1, 3, 1000.0);
        cache.append(&first, &first).expect("append");
        cache.append(&second, &second).expect("append");
        assert_eq!(cache.len(), 5);
        let (keys, _) = cache.tensors(&Device::Cpu).expect("tensors");
        let expected = Tensor::cat(&[&first, &second], 2).expect("cat");
        let diff: f32 = (keys - expected)
            .and_then(|d| d.abs())
            .and_then(|d| d.sum_all())
            .and_then(|d| d.to_scalar())
            .expect("diff");
        assert_eq!(diff, 0.0);
    }

    #[test]
    fn select_copies_parents_including_swaps_and_growth() {
        let mut cache = KvCache::new(1, 2, 4);
        let one = filled(3, 1, 2, 2, 0.0);
        cache.append(&one, &one).expect("append");
        let row = |cache: &KvCache, i: usize| -> Vec<f32> {
            let (keys, _) = cache.tensors(&Device::Cpu).expect("tensors");
            keys.get(i)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .expect("row")
        };
        let before: Vec<Vec<f32>> = (0..3).map(|i| row(&cache, i)).collect();
        // Swap 0 and 1, keep 2, and grow to four with a second copy of 1.
        cache.select(&[1, 0, 2, 1]).expect("select");
        assert_eq!(row(&cache, 0), before[1]);
        assert_eq!(row(&cache, 1), before[0]);
        assert_eq!(row(&cache, 2), before[2]);
        assert_eq!(row(&cache, 3), before[1]);
        cache.select(&[3, 3]).expect("shrink");
        assert_eq!(row(&cache, 0), before[1]);
        assert_eq!(row(&cache, 1), before[1]);
        assert!(cache.select(&[2]).is_err(), "only two sequences left");
    }

    #[test]
    fn refuses_to_overflow_the_context() {
        let mut cache = KvCache::new(1, 1, 2);
        let three = filled(1, 1, 3, 1, 0.0);
        assert!(cache.append(&three, &three).is_err());
    }
}
