//! The proxy's chunked response-body decoder against the reference decoder
//! (`selfheal_fuzz::chunked`): the same input, handed over in arbitrary
//! pieces, must end the body at the same byte with the same payload, and
//! whatever one of them accepts whole the other accepts too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use selfheal::proxy::fuzzing::{decode_body, Decoded, Decoder};
use selfheal_fuzz::{chunked, pieces, split_control, Reference};

fuzz_target!(|data: &[u8]| {
    let Some((control, input)) = split_control(data) else {
        return;
    };
    let ours = decode_body(Decoder::Chunked, input, &pieces(control));
    let reference = chunked(input);
    match (&ours, &reference) {
        (
            Decoded::Done { body, consumed },
            Reference::Done {
                body: ref_body,
                consumed: ref_consumed,
            },
        ) => {
            assert_eq!(body, ref_body, "payload differs");
            assert_eq!(consumed, ref_consumed, "body ends at a different byte");
        }
        (Decoded::Done { .. }, _) => {
            panic!("the proxy accepted a body the reference calls {reference:?}")
        }
        (_, Reference::Done { .. }) => {
            panic!("the proxy refused a valid body: {ours:?}")
        }
        // Data handed on before the end was seen is part of the input.
        _ => assert!(body_len(&ours) <= input.len()),
    }
});

fn body_len(d: &Decoded) -> usize {
    match d {
        Decoded::Done { body, .. } | Decoded::NeedMore { body } => body.len(),
        Decoded::Error(_) => 0,
    }
}
