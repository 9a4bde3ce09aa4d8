//! What an uploaded file is, judged by its first bytes. The name and `Content-Type` a
//! client sends are labels anyone can set: a file labelled audio can be an HTML page that
//! would run in hark's origin if served as sent. Only containers the decoder reads pass,
//! and they are served under the type found here, never the label.

/// How many leading bytes [`audio_content_type`] looks at (WebM needs its first 256).
pub const SNIFF_BYTES: usize = 512;

/// The content type hark stores and serves for a file starting with `head`, or `None`
/// when it is not audio the engine can decode.
pub fn audio_content_type(head: &[u8]) -> Option<&'static str> {
    let kind = infer::get(head)?;
    let served = match kind.mime_type() {
        "audio/x-wav" => "audio/wav",
        "audio/mpeg" => "audio/mpeg",
        "audio/x-flac" => "audio/flac",
        "audio/ogg" | "audio/opus" => "audio/ogg",
        "audio/m4a" | "video/mp4" | "video/x-m4v" | "video/quicktime" => "audio/mp4",
        "video/webm" | "video/x-matroska" => "audio/webm",
        "audio/aac" => "audio/aac",
        "audio/x-aiff" => "audio/aiff",
        _ => return None,
    };
    Some(served)
}

/// Every type [`audio_content_type`] can give: what may be served as a recording's audio.
/// Anything else stored (by an older version, say) is served as a download of bytes.
pub const SERVED_TYPES: [&str; 8] = [
    "audio/wav",
    "audio/mpeg",
    "audio/flac",
    "audio/ogg",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/aiff",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/audio")
            .join(name);
        let mut bytes = std::fs::read(path).expect("clip");
        bytes.truncate(SNIFF_BYTES);
        bytes
    }

    #[test]
    fn the_corpus_formats_are_audio() {
        for (name, expected) in [
            ("meeting_01.wav", "audio/wav"),
            ("meeting_01.flac", "audio/flac"),
            ("meeting_01.ogg", "audio/ogg"),
            ("meeting_01_stereo44k.mp3", "audio/mpeg"),
        ] {
            assert_eq!(audio_content_type(&head_of(name)), Some(expected), "{name}");
            assert!(SERVED_TYPES.contains(&expected));
        }
    }

    #[test]
    fn pages_scripts_and_images_are_not() {
        for head in [
            &b"<!doctype html><script>alert(1)</script>"[..],
            b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
            b"%PDF-1.7\n",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
            b"GIF89a",
            b"",
            b"RIFF\0\0\0\0AVI LIST",
        ] {
            assert_eq!(audio_content_type(head), None, "{head:?}");
        }
    }
}
