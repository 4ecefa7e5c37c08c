//! Clamping a requested reasoning [`Effort`] to the levels a model supports.
//!
//! Each provider maps the clamped level to its own wire field in its own
//! file (`openai.rs`, `anthropic.rs`, `gemini.rs`).

use super::Effort;

/// The level to ask a model for when `requested` was asked and the model
/// supports `supported`.
///
/// The highest supported level not above `requested`; when every supported
/// level is above it, the lowest supported level; [`Effort::Off`] when the
/// list is empty. The order of `supported` does not matter.
pub fn clamp(requested: Effort, supported: &[Effort]) -> Effort {
    supported
        .iter()
        .copied()
        .filter(|level| *level <= requested)
        .max()
        .or_else(|| supported.iter().copied().min())
        .unwrap_or(Effort::Off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_level_is_kept() {
        for level in Effort::ALL {
            assert_eq!(clamp(level, &Effort::ALL), level);
        }
    }

    #[test]
    fn falls_to_highest_supported_below() {
        let supported = [Effort::Off, Effort::On];
        assert_eq!(clamp(Effort::Max, &supported), Effort::On);
        assert_eq!(clamp(Effort::High, &supported), Effort::On);
        assert_eq!(
            clamp(Effort::High, &[Effort::Max, Effort::Off]),
            Effort::Off
        );
    }

    #[test]
    fn rises_to_lowest_supported_when_none_below() {
        let always_thinks = [Effort::High, Effort::On];
        assert_eq!(clamp(Effort::Off, &always_thinks), Effort::On);
        assert_eq!(clamp(Effort::Off, &[Effort::Max]), Effort::Max);
    }

    #[test]
    fn empty_list_means_off() {
        assert_eq!(clamp(Effort::Max, &[]), Effort::Off);
        assert_eq!(clamp(Effort::Off, &[]), Effort::Off);
    }
}
