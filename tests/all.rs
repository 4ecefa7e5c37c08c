//! Baton's integration tests: one binary, one module per area.

mod providers;
mod support;
