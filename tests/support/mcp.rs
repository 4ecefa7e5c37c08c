//! The MCP test server (examples/mcp_test_server.rs, a stdio server built
//! with rmcp) and config that points Baton at it.

use std::path::PathBuf;

use serde_json::Value;

use super::fake_llm::SeenRequest;

/// The server's result for `lookup {"word": "baton"}`.
pub const BATON_ENTRY: &str = "baton: the conductor's stick, 42 cm of birch";

/// The test server's executable. `cargo test` and `cargo nextest` build
/// examples next to the test binary's profile folder:
/// `target/<profile>/deps/all-<hash>` -> `target/<profile>/examples/`.
pub fn test_server() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary is in target/<profile>/deps");
    let server = profile
        .join("examples")
        .join(format!("mcp_test_server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        server.exists(),
        "{} is missing: cargo test builds it (or cargo build --examples)",
        server.display()
    );
    server
}

/// A `[mcp.servers.NAME]` table that starts the test server with `args`
/// (the server ignores them; tests use them to find their own process).
pub fn server_table(name: &str, args: &[&str]) -> String {
    let command = toml::Value::String(test_server().display().to_string());
    let args = toml::Value::Array(args.iter().map(|a| toml::Value::from(*a)).collect());
    format!("[mcp.servers.{name}]\ncommand = {command}\nargs = {args}\n")
}

/// The JSON schema a request offered for tool `name` (OpenAI wire).
pub fn offered_schema(request: &SeenRequest, name: &str) -> Option<Value> {
    request.raw["tools"]
        .as_array()?
        .iter()
        .find(|tool| tool["function"]["name"] == name)
        .map(|tool| tool["function"]["parameters"].clone())
}

/// The pids of running processes whose command line holds `tag`.
pub fn processes_tagged(tag: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let running = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .is_some_and(|stat| !stat.contains(") Z "));
            let tagged = cmdline.split(|b| *b == 0).any(|arg| arg == tag.as_bytes());
            (tagged && running).then_some(pid)
        })
        .collect()
}
