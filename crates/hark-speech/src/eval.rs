//! Measuring transcription quality: word error rate after a normalisation in the spirit
//! of Whisper's English text normaliser (case, punctuation, spelled-out numbers), so
//! "version two" and "version 2" count as the same words.

/// Lower-cased words without punctuation, with number words up to the hundreds and
/// digit runs turned into digits ("four five seven two" → "4572", "ninety" → "90").
pub fn normalize(text: &str) -> Vec<String> {
    let cleaned: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut digits = String::new();
    for word in cleaned.split_whitespace() {
        let word = word.trim_matches('\'');
        match number_value(word) {
            Some(d) if d < 10 => digits.push_str(&d.to_string()),
            Some(d) => {
                flush(&mut digits, &mut out);
                out.push(d.to_string());
            }
            None if word.chars().all(|c| c.is_ascii_digit()) && !word.is_empty() => {
                digits.push_str(word)
            }
            None => {
                flush(&mut digits, &mut out);
                if !word.is_empty() {
                    out.push(word.to_owned());
                }
            }
        }
    }
    flush(&mut digits, &mut out);
    out
}

fn flush(digits: &mut String, out: &mut Vec<String>) {
    if !digits.is_empty() {
        out.push(std::mem::take(digits));
    }
}

fn number_value(word: &str) -> Option<u32> {
    const SMALL: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if let Some(i) = SMALL.iter().position(|w| *w == word) {
        return Some(i as u32);
    }
    TENS.iter()
        .position(|w| *w == word)
        .map(|i| 20 + 10 * i as u32)
}

/// Word-level edit distance divided by the reference length.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (normalize(reference), normalize(hypothesis));
    errors(&r, &h) as f64 / r.len().max(1) as f64
}

/// Substitutions + deletions + insertions turning `reference` into `hypothesis`.
pub fn errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, rw) in reference.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, hw) in hypothesis.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if rw == hw {
                diagonal
            } else {
                1 + diagonal.min(row[j]).min(above)
            };
            diagonal = above;
        }
    }
    row[hypothesis.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_punctuation_and_numbers() {
        assert_eq!(
            normalize("Version two, is NEXT."),
            ["version", "2", "is", "next"]
        );
        assert_eq!(
            normalize("ticket number is four five seven two."),
            ["ticket", "number", "is", "4572"]
        );
        assert_eq!(
            normalize("ticket number is 4572"),
            ["ticket", "number", "is", "4572"]
        );
        assert_eq!(
            normalize("within two business days"),
            ["within", "2", "business", "days"]
        );
    }

    #[test]
    fn counts_word_edits() {
        assert_eq!(word_error_rate("a b c d", "a b c d"), 0.0);
        assert_eq!(word_error_rate("a b c d", "a x c"), 0.5);
        assert_eq!(word_error_rate("a b", "a b c d"), 1.0);
        assert_eq!(
            word_error_rate("release of version two", "release on version 2"),
            0.25
        );
    }
}
