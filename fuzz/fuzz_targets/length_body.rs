//! The proxy's `Content-Length` and read-until-close body decoders against
//! the obvious reference: exactly the announced bytes, in any pieces, and
//! nothing after them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use selfheal::proxy::fuzzing::{decode_body, Decoded, Decoder};
use selfheal_fuzz::{length, pieces, split_control, Reference};

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = split_control(data) else {
        return;
    };
    let Some((len_bytes, input)) = rest.split_first_chunk::<2>() else {
        return;
    };
    // Lengths around the input's size matter most; the top bit asks for a
    // huge one (never complete here).
    let announced = match u16::from_le_bytes(*len_bytes) {
        n if n & 0x8000 != 0 => u64::MAX - u64::from(n & 0x7fff),
        n => u64::from(n),
    };
    let ours = decode_body(Decoder::Length(announced), input, &pieces(control));
    match (ours, length(input, announced)) {
        (
            Decoded::Done { body, consumed },
            Reference::Done {
                body: ref_body,
                consumed: ref_consumed,
            },
        ) => {
            assert_eq!(body, ref_body);
            assert_eq!(consumed, ref_consumed);
        }
        (Decoded::NeedMore { body }, Reference::Incomplete) => assert_eq!(body, input),
        (ours, reference) => panic!("proxy {ours:?}, reference {reference:?}"),
    }
    match decode_body(Decoder::UntilClose, input, &pieces(control)) {
        Decoded::NeedMore { body } => assert_eq!(body, input),
        other => panic!("until-close ended early: {other:?}"),
    }
});
