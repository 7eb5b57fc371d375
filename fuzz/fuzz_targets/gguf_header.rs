//! Arbitrary bytes as a GGUF file: the complete header parse, the prefix parse the loader retries
//! as bytes arrive, the tensor stream, and the whole `ModelLoader` (header → preflight:
//! hyper-parameters, tokenizer, chat template, tensor shapes → streamed tensors → weights), fed
//! in chunks whose sizes come from the input. Errors are fine; a panic, an abort, a hang or a
//! huge allocation is a finding.
#![no_main]

use std::borrow::Cow;

use inference::gguf::{GgufHeader, TensorInfo, TensorStream};
use inference::loader::ModelLoader;
use libfuzzer_sys::fuzz_target;

/// SplitMix64 seeded by a hash of the input: chunk sizes and cut points are a function of the
/// input, so every run of one input does the same thing.
struct Rng(u64);

impl Rng {
    fn new(data: &[u8]) -> Rng {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for &b in data.iter().rev().take(64) {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Rng(h ^ data.len() as u64)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A chunk size for `left` bytes: tiny, small, or the rest.
    fn chunk(&mut self, left: usize) -> usize {
        let n = match self.next() % 4 {
            0 => 1 + self.next() % 8,
            1 => 1 + self.next() % 256,
            2 => 1 + self.next() % 8192,
            _ => left as u64,
        };
        (n as usize).clamp(1, left.max(1))
    }
}

fn push_all(data: &[u8], rng: &mut Rng, mut push: impl FnMut(&[u8]) -> bool) {
    let mut rest = data;
    while !rest.is_empty() {
        let n = rng.chunk(rest.len());
        if !push(&rest[..n]) {
            return;
        }
        rest = &rest[n..];
    }
}

fuzz_target!(|data: &[u8]| {
    let mut rng = Rng::new(data);
    let size = data.len() as u64;

    // 1. The whole file at once.
    let complete = GgufHeader::parse_complete(data);
    if let Ok(h) = &complete {
        assert!(h.data_offset <= size, "data section starts past the end");
        let _ = h.tensor_bytes();
        for t in &h.tensors {
            let end = h
                .data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.size));
            assert!(
                end.is_some_and(|e| e <= size),
                "tensor `{}` ends past the end",
                t.name
            );
            let r = h.tensor_range(t);
            assert!(r.end <= data.len());
        }
        // Every tensor comes out of the stream once, with its bytes.
        let mut stream = TensorStream::new(h, 0);
        let mut seen = 0usize;
        let mut check = |t: &TensorInfo, d: Cow<'_, [u8]>| {
            assert_eq!(d.len() as u64, t.size);
            seen += 1;
            Ok(())
        };
        let mut failed = false;
        push_all(data, &mut rng, |c| {
            failed = stream.push(c, &mut check).is_err();
            !failed
        });
        if !failed {
            stream.finish().expect("every tensor is inside the file");
            assert_eq!(seen, h.tensors.len());
        }
    }

    // 2. A prefix of the file: "need more bytes", or the answer of the complete parse.
    if !data.is_empty() {
        let cut = (rng.next() % size) as usize;
        match GgufHeader::parse(&data[..cut], size) {
            Ok(None) => {}
            Ok(Some(h)) => assert_eq!(
                complete
                    .as_ref()
                    .map(|c| (c.data_offset, c.tensors.len()))
                    .ok(),
                Some((h.data_offset, h.tensors.len())),
                "a prefix parsed differently from the whole file"
            ),
            Err(_) => assert!(complete.is_err(), "a prefix failed where the file parses"),
        }
    }

    // 3. The loader, in chunks: the whole file, then a file announced larger than what comes.
    for announced in [size, size + 1 + rng.next() % 4096] {
        let mut loader = ModelLoader::new(announced);
        let mut ok = true;
        push_all(data, &mut rng, |c| {
            ok = loader.push(c).is_ok();
            ok
        });
        if ok {
            // Ok when every tensor arrived (a short tail is only padding), an error otherwise.
            let _ = loader.finish();
        }
    }
});
