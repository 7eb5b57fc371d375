//! Stop strings (OpenAI's `stop`): text is held back while it could still be the start of a stop
//! string, so a stop string is never streamed to the caller; the reply ends where one appears.

/// Filters a stream of text pieces for the first occurrence of any stop string.
#[derive(Clone, Debug, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    /// Text received but not yet released.
    held: String,
    hit: bool,
}

impl StopStrings {
    /// Empty strings are ignored.
    pub fn new(stops: &[String]) -> Self {
        StopStrings {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
            hit: false,
        }
    }

    /// Whether a stop string was found (nothing more is released after it).
    pub fn hit(&self) -> bool {
        self.hit
    }

    /// Take `piece`; returns the text that can be released now (never part of a stop string).
    pub fn push(&mut self, piece: &str) -> String {
        if self.hit {
            return String::new();
        }
        if self.stops.is_empty() {
            return piece.to_owned();
        }
        self.held.push_str(piece);
        // The earliest stop string in what is held ends the reply there.
        let first = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first {
            self.hit = true;
            let out = self.held[..at].to_owned();
            self.held.clear();
            return out;
        }
        // Hold back the longest tail that is a prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_prefix_suffix(&self.held, s))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_owned();
        self.held.drain(..cut);
        out
    }

    /// The end of the stream: whatever is still held (it was not a stop string).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Bytes of the longest suffix of `text` (on a char boundary) that is a proper prefix of `stop`.
fn longest_prefix_suffix(text: &str, stop: &str) -> usize {
    let max = text.len().min(stop.len().saturating_sub(1));
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && stop.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut f = StopStrings::new(&stops);
        let mut out = String::new();
        for p in pieces {
            out.push_str(&f.push(p));
        }
        out.push_str(&f.finish());
        (out, f.hit())
    }

    #[test]
    fn stops_across_pieces_and_never_streams_the_stop() {
        assert_eq!(
            run(&["\n\n"], &["Hello", "\n", "\nWorld"]),
            ("Hello".into(), true)
        );
        assert_eq!(
            run(&["END"], &["ab", "E", "N", "D", "cd"]),
            ("ab".into(), true)
        );
        // A partial match that turns out not to be one is released.
        assert_eq!(run(&["END"], &["aE", "Nx", "y"]), ("aENxy".into(), false));
        // The earliest of several.
        assert_eq!(run(&["b", "a"], &["xxab"]), ("xx".into(), true));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&[""], &["a"]), ("a".into(), false));
        // Multi-byte text is cut on char boundaries.
        assert_eq!(run(&["éé"], &["aé", "b"]), ("aéb".into(), false));
        assert_eq!(run(&["éé"], &["aé", "éb"]), ("a".into(), true));
    }

    #[test]
    fn holds_back_only_what_could_start_a_stop() {
        let mut f = StopStrings::new(&["STOP".to_owned()]);
        assert_eq!(f.push("abcS"), "abc");
        assert_eq!(f.push("T"), "");
        assert_eq!(f.push("x"), "STx");
    }
}
