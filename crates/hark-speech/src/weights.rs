//! Where Whisper's weights come from, under CTranslate2's variable names (the names the
//! model builder asks for): a CTranslate2 `model.bin` directly, or a Hugging Face folder
//! (`model.safetensors`) translated to those names by [`crate::hf`].

use candle_core::{Device, Tensor};

use crate::SpeechError;
use crate::ct2::Ct2Model;

pub trait WeightSource {
    /// The shape of a variable, or `None` if the model has no such variable.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// An integer setting such as `encoder/num_heads`.
    fn scalar(&self, name: &str) -> Option<i64>;
    /// A variable as an f32 tensor.
    fn tensor(&self, name: &str, device: &Device) -> Result<Tensor, SpeechError>;
}

impl WeightSource for Ct2Model {
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.variable(name).map(|v| v.shape.clone())
    }

    fn scalar(&self, name: &str) -> Option<i64> {
        Ct2Model::scalar(self, name)
    }

    fn tensor(&self, name: &str, device: &Device) -> Result<Tensor, SpeechError> {
        Ct2Model::tensor(self, name, device)
    }
}
