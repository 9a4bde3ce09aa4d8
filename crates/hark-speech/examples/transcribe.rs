//! cargo run --release -p hark-speech --example transcribe -- MODEL_DIR AUDIO [BEAM]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let engine = hark_speech::Engine::load(std::path::Path::new(&args[1])).unwrap();
    let samples = hark_speech::audio::load_16k(std::path::Path::new(&args[2])).unwrap();
    let options = hark_speech::Options {
        beam_size: args.get(3).and_then(|b| b.parse().ok()).unwrap_or(1),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let t = engine.transcribe(&samples, &options, &mut |_| {}).unwrap();
    for s in &t.segments {
        println!("[{:6.2} → {:6.2}] {}", s.start, s.end, s.text);
    }
    eprintln!(
        "{:.2}s for {:.1}s of audio",
        started.elapsed().as_secs_f64(),
        t.duration
    );
}
