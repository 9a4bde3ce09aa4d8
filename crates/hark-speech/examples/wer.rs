//! Prints the word error rate of a hypothesis text against a reference text, with hark's
//! evaluation normalisation. Used by bench/speech.py so both engines are scored alike.
//!
//! cargo run --release -p hark-speech --example wer -- "REFERENCE" "HYPOTHESIS"
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(reference), Some(hypothesis)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: wer REFERENCE HYPOTHESIS");
        std::process::exit(2);
    };
    println!(
        "{:.4}",
        hark_speech::eval::word_error_rate(reference, hypothesis)
    );
}
