//! The platform metrics every adapter counts, with their one definition of
//! names and labels (the core's `/metrics` renders them). Counting goes
//! through the `metrics` facade: without an installed recorder it is a
//! no-op.

use crate::Platform;

/// Platform API requests by `platform`, `method` and `status` (counter).
pub const PLATFORM_REQUESTS: &str = "baton_platform_requests_total";
/// Platform 429 answers waited out, by `platform` (counter).
pub const PLATFORM_RATE_LIMITED: &str = "baton_platform_rate_limited_total";

/// Counts one answered API request: `status` is the HTTP status (`200`,
/// `429`, ...) or `error` when no answer came.
pub fn platform_request(platform: Platform, method: &'static str, status: String) {
    metrics::counter!(
        PLATFORM_REQUESTS,
        "platform" => platform.as_str(),
        "method" => method,
        "status" => status
    )
    .increment(1);
}

/// Counts one 429 that is waited out.
pub fn platform_rate_limited(platform: Platform) {
    metrics::counter!(PLATFORM_RATE_LIMITED, "platform" => platform.as_str()).increment(1);
}
