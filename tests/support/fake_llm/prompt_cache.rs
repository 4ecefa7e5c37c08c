//! A model of the providers' prompt caches, for the fake model server
//! ([`super::FakeLlm::model_prompt_caching`]): usage that follows the
//! request, as a real provider would report it.
//!
//! A request is cut into blocks in the order the provider reads its prompt
//! (tools, system prompt, then each message, or on Anthropic each content
//! block), each serialized without its `cache_control` marker; a block
//! costs its bytes / 4 in tokens. What the fake has seen before is kept as
//! hashes of whole prefixes:
//!
//! - **OpenAI**: the longest prefix an earlier request sent is read from the
//!   cache when it is at least 1,024 tokens, counted in steps of 128 above
//!   that (automatic caching; `prompt_cache_key` only routes, so it is not
//!   needed here).
//! - **Gemini**: the same, without the steps (implicit caching).
//! - **Anthropic**: only prefixes that end at a `cache_control` breakpoint
//!   are written, when at least 1,024 tokens long; a request reads the
//!   longest written prefix that ends within 20 blocks before one of its
//!   breakpoints, and writes the tokens from there to its last breakpoint.
//!   A request without breakpoints reads and writes nothing.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::Value;

/// Shortest prefix a provider caches, in tokens (OpenAI's, Anthropic's for
/// Sonnet and Opus, Gemini 2.5 Flash's).
pub const MIN_CACHED: usize = 1024;
/// Blocks Anthropic looks back from a breakpoint for an earlier entry.
const LOOKBACK: usize = 20;

/// Which wire's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    OpenAi,
    Anthropic,
    Gemini,
}

/// One request's tokens, as the provider would report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    /// Every prompt token.
    pub input: usize,
    /// Of those, read from the cache.
    pub cached: usize,
    /// Of those, written to the cache (Anthropic).
    pub written: usize,
}

/// What the cache holds: prefix hashes (OpenAI, Gemini: every prefix sent;
/// Anthropic: the prefixes written at breakpoints).
#[derive(Debug, Default)]
pub struct PromptCache {
    prefixes: HashSet<u64>,
    /// Anthropic: treat requests as if they carried no breakpoints (as
    /// Baton's requests did before it set them).
    pub ignore_breakpoints: bool,
}

/// One block: the hash of the prefix that ends with it, the prefix's
/// tokens, and whether it carries a breakpoint.
struct Block {
    prefix: u64,
    tokens: usize,
    breakpoint: bool,
}

impl PromptCache {
    /// An empty cache; see [`PromptCache::ignore_breakpoints`].
    pub fn new(ignore_breakpoints: bool) -> PromptCache {
        PromptCache {
            prefixes: HashSet::new(),
            ignore_breakpoints,
        }
    }

    /// Counts `raw` (a request body) and remembers what it leaves cached.
    pub fn count(&mut self, rules: Rules, raw: &Value) -> Counted {
        let blocks = blocks(rules, raw);
        let input = blocks.last().map_or(0, |b| b.tokens);
        match rules {
            Rules::OpenAi | Rules::Gemini => {
                let hit = blocks
                    .iter()
                    .rev()
                    .find(|b| self.prefixes.contains(&b.prefix))
                    .map_or(0, |b| b.tokens);
                let cached = if hit < MIN_CACHED {
                    0
                } else if rules == Rules::OpenAi {
                    MIN_CACHED + (hit - MIN_CACHED) / 128 * 128
                } else {
                    hit
                };
                self.prefixes.extend(blocks.iter().map(|b| b.prefix));
                Counted {
                    input,
                    cached,
                    written: 0,
                }
            }
            Rules::Anthropic => {
                let marks: Vec<usize> = (0..blocks.len())
                    .filter(|&i| blocks[i].breakpoint && !self.ignore_breakpoints)
                    .collect();
                let Some(&last_mark) = marks.last() else {
                    return Counted {
                        input,
                        ..Counted::default()
                    };
                };
                let reachable = |i: usize| marks.iter().any(|&m| m >= i && m - i <= LOOKBACK);
                let cached = (0..=last_mark)
                    .rev()
                    .find(|&i| reachable(i) && self.prefixes.contains(&blocks[i].prefix))
                    .map_or(0, |i| blocks[i].tokens);
                let mut written_to = cached;
                for &mark in &marks {
                    if blocks[mark].tokens >= MIN_CACHED {
                        self.prefixes.insert(blocks[mark].prefix);
                        written_to = written_to.max(blocks[mark].tokens);
                    }
                }
                Counted {
                    input,
                    cached,
                    written: written_to - cached,
                }
            }
        }
    }
}

/// `raw` cut into blocks in the provider's reading order, with running
/// prefix hashes and token counts.
fn blocks(rules: Rules, raw: &Value) -> Vec<Block> {
    let mut parts: Vec<(Value, bool)> = Vec::new();
    if let Some(tools) = raw.get("tools") {
        parts.push((tools.clone(), false));
    }
    match rules {
        Rules::OpenAi => {
            for message in array(raw, "messages") {
                parts.push((message.clone(), false));
            }
        }
        Rules::Gemini => {
            if let Some(system) = raw.get("systemInstruction") {
                parts.push((system.clone(), false));
            }
            for content in array(raw, "contents") {
                parts.push((content.clone(), false));
            }
        }
        Rules::Anthropic => {
            for block in array(raw, "system") {
                parts.push((block.clone(), block.get("cache_control").is_some()));
            }
            for message in array(raw, "messages") {
                let role = message.get("role").cloned().unwrap_or_default();
                for block in message
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let marked = block.get("cache_control").is_some();
                    parts.push((serde_json::json!({"role": role, "block": block}), marked));
                }
            }
        }
    }
    let mut hasher = DefaultHasher::new();
    let mut tokens = 0;
    parts
        .into_iter()
        .map(|(mut part, breakpoint)| {
            strip_cache_control(&mut part);
            let text = part.to_string();
            text.hash(&mut hasher);
            tokens += text.len().div_ceil(4);
            Block {
                prefix: hasher.finish(),
                tokens,
                breakpoint,
            }
        })
        .collect()
}

fn array<'a>(raw: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    raw.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// Takes every `cache_control` out of `value`: the marker is not part of the
/// prompt a provider caches.
fn strip_cache_control(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("cache_control");
            map.values_mut().for_each(strip_cache_control);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_cache_control),
        _ => {}
    }
}
