//! Shared test support: fake servers speaking real wire formats.
