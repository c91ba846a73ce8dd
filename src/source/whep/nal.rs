//! Just enough H.264 Annex B parsing to know where the decoder can start: an access unit
//! with an IDR slice (or SPS, which senders put in front of one) is a keyframe.

/// NAL unit types (ITU-T H.264 table 7-1) that start a decodable picture.
const IDR_SLICE: u8 = 5;
const SPS: u8 = 7;

/// The NAL unit types in an Annex B access unit, in order.
pub fn nal_types(annex_b: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 3 < annex_b.len() {
            let three = annex_b[i] == 0 && annex_b[i + 1] == 0 && annex_b[i + 2] == 1;
            i += 1;
            if three {
                i += 2;
                return annex_b.get(i).map(|b| b & 0x1f);
            }
        }
        None
    })
}

/// True when decoding can start at this access unit.
pub fn is_keyframe(annex_b: &[u8]) -> bool {
    nal_types(annex_b).any(|t| t == IDR_SLICE || t == SPS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nal_types_after_three_and_four_byte_start_codes() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 9, 0, 0, 0, 1, 0x65, 7, 7,
        ];
        assert_eq!(nal_types(&au).collect::<Vec<_>>(), [7, 8, 5]);
        assert!(is_keyframe(&au));
        assert!(!is_keyframe(&[0, 0, 0, 1, 0x41, 3, 3, 3]));
        assert!(!is_keyframe(&[]));
        assert!(!is_keyframe(&[0, 0, 1]));
    }
}
