use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_shipped_config_parses() {
    let text = include_str!("../../config/baton.toml");
    let config = Config::from_toml(text, env(&[])).unwrap();
    assert_eq!(
        config.models.orchestrator_model().unwrap().provider,
        "openai"
    );
    assert!(config.providers.contains_key("anthropic"));
    assert_eq!(config.media.max_bytes, 10_000_000);
    assert!(
        config
            .models
            .spec(&config.models.orchestrator_model().unwrap())
            .vision
    );
}

#[test]
fn media_keys_are_read_and_zero_sizes_refused() {
    let config = Config::from_toml("", env(&[])).unwrap();
    assert_eq!(config.media.max_bytes, 10_000_000);
    assert_eq!(config.media.max_text_bytes, 200_000);
    assert_eq!(config.media.download_timeout_secs, 60);
    assert_eq!(config.media.out(), baton_channel::MediaOut::default());
    let config = Config::from_toml(
        "[media]\ncode_as_file_lines = 120\n",
        env(&[("BATON__MEDIA__MAX_PIECES", "0")]),
    )
    .unwrap();
    assert_eq!(config.media.code_as_file_lines, 120);
    assert_eq!(config.media.max_pieces, 0);
    let refused = Config::from_toml("[media]\nmax_bytes = 0\n", env(&[])).unwrap_err();
    assert!(refused.to_string().contains("media.max_bytes"), "{refused}");
    assert!(Config::from_toml("[media]\nmax_files = 3\n", env(&[])).is_err());
}

#[test]
fn cached_and_cache_write_tokens_have_their_own_prices() {
    let text = r#"
[models.catalog."a:priced"]
input_price = 2.0
output_price = 10.0
cached_input_price = 0.2
cache_write_price = 3.0

[models.catalog."a:unpriced-cache"]
input_price = 2.0
"#;
    let config = Config::from_toml(text, env(&[])).unwrap();
    let usage = crate::domain::Usage {
        input_tokens: 1_000_000,
        output_tokens: 100_000,
        cached_input_tokens: 500_000,
        cache_write_tokens: 250_000,
    };
    let priced = &config.models.catalog["a:priced"];
    // 250k plain at $2, 500k cached at $0.2, 250k written at $3, 100k out at $10.
    assert!((priced.cost(usage) - (0.5 + 0.1 + 0.75 + 1.0)).abs() < 1e-9);
    // Unset: cached at the input price, writes at 1.25 times it.
    let plain = &config.models.catalog["a:unpriced-cache"];
    assert!((plain.cost(usage) - (0.5 + 1.0 + 0.625)).abs() < 1e-9);
    // Cache counts larger than the input (a confused provider) never
    // make a negative or inflated cost.
    let odd = crate::domain::Usage {
        input_tokens: 10,
        cached_input_tokens: 50,
        cache_write_tokens: 50,
        ..crate::domain::Usage::default()
    };
    assert!((priced.cost(odd) - 10.0 * 0.2 / 1e6).abs() < 1e-12);

    let negative = "[models.catalog.\"a:b\"]\ncached_input_price = -1.0\n";
    let error = Config::from_toml(negative, env(&[]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("cached_input_price"), "{error}");
}

#[test]
fn environment_overrides_any_key() {
    let config = Config::from_toml(
        "[orchestrator]\nmax_workers = 3\n",
        env(&[
            ("BATON__ORCHESTRATOR__MAX_WORKERS", "5"),
            ("BATON__ORCHESTRATOR__DEFAULT_MODE", "orchestrator"),
            ("BATON__STORAGE__URL", "sqlite::memory:"),
            ("BATON__PROVIDERS__LOCAL__KIND", "openai"),
            (
                "BATON__PROVIDERS__LOCAL__BASE_URL",
                "http://127.0.0.1:11434/v1",
            ),
            ("UNRELATED", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(config.orchestrator.max_workers, 5);
    assert_eq!(
        config.orchestrator.default_mode,
        ModeSetting(Mode::Orchestrator)
    );
    assert_eq!(config.storage.url, "sqlite::memory:");
    assert_eq!(
        config.providers["local"].base_url,
        "http://127.0.0.1:11434/v1"
    );
}

#[test]
fn bad_values_are_clear_errors() {
    let err = Config::from_toml("[models]\norchestrator = \"gpt\"\n", env(&[])).unwrap_err();
    assert!(err.to_string().contains("provider:model"), "{err}");
    let err = Config::from_toml("[orchestrator]\ndefault_mode = \"solo\"\n", env(&[])).unwrap_err();
    assert!(err.to_string().contains("single or orchestrator"), "{err}");
    let err = Config::from_toml("[telegram]\nmode = \"webhook\"\n", env(&[])).unwrap_err();
    assert!(err.to_string().contains("webhook_url"), "{err}");
    let err = Config::from_toml("[telegram]\ndm_policy = \"maybe\"\n", env(&[])).unwrap_err();
    assert!(
        err.to_string().contains("dm_policy") || err.to_string().contains("maybe"),
        "{err}"
    );
    let err = Config::from_toml("[storage]\nurll = \"x\"\n", env(&[])).unwrap_err();
    assert!(err.to_string().contains("urll"), "{err}");
}

#[test]
fn the_platform_sections_are_the_adapters_own_types_read_from_file_and_environment() {
    let config = Config::from_toml(
        "[telegram]\nmin_send_interval_ms = 250\ndm_policy = \"open\"\n\
         [discord]\nrequire_mention_in = { \"123\" = false }\n",
        env(&[
            ("BATON__DISCORD__DEFER_AFTER_MS", "9000"),
            ("BATON__TELEGRAM__MODE", "webhook"),
            (
                "BATON__TELEGRAM__WEBHOOK_URL",
                "https://bot.example.org/hook",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(
        config.telegram.min_send_interval(),
        Duration::from_millis(250)
    );
    assert_eq!(config.telegram.dm_policy, DmPolicy::Open);
    assert_eq!(config.telegram.mode, TelegramMode::Webhook);
    assert_eq!(config.telegram.verbose_batch(), Duration::from_secs(1));
    assert!(!config.discord.mention_required(123));
    assert!(config.discord.mention_required(456));
    assert_eq!(config.discord.defer_after(), Duration::from_millis(2500));
    assert_eq!(config.discord.dm_policy, DmPolicy::Allowlist);

    for (text, message) in [
        (
            "[telegram]\ngroup_messages_per_minute = 0\n",
            "invalid config: telegram.group_messages_per_minute must be at least 1",
        ),
        (
            "[telegram]\npoll_timeout_secs = 16\n",
            "invalid config: telegram.poll_timeout_secs must be 1 to 15 (the HTTP client gives up at 17)",
        ),
        (
            "[telegram]\nmode = \"webhook\"\n",
            "invalid config: telegram.mode = \"webhook\" needs telegram.webhook_url",
        ),
        (
            "[telegram]\nmode = \"webhook\"\nwebhook_url = \"https://x\"\nwebhook_path = \"hook\"\n",
            "invalid config: telegram.webhook_path must start with /",
        ),
    ] {
        let err = Config::from_toml(text, env(&[])).unwrap_err();
        assert_eq!(err.to_string(), message);
    }
    // A disabled adapter's webhook keys are not checked.
    Config::from_toml(
        "[telegram]\nenabled = false\nmode = \"webhook\"\n",
        env(&[]),
    )
    .unwrap();
    let err = Config::from_toml("", env(&[("BATON__DISCORD__MENTION", "true")])).unwrap_err();
    assert!(err.to_string().contains("mention"), "{err}");
}

#[test]
fn the_fetch_url_proxy_is_off_unless_set_and_unknown_tool_keys_are_refused() {
    let config = Config::from_toml("", env(&[])).unwrap();
    assert_eq!(config.tools.fetch_url.proxy, None);
    let config = Config::from_toml(
        "[tools.fetch_url]\nproxy = \"http://127.0.0.1:3128\"\n",
        env(&[]),
    )
    .unwrap();
    assert_eq!(
        config.tools.fetch_url.proxy.as_deref(),
        Some("http://127.0.0.1:3128")
    );
    let config = Config::from_toml(
        "",
        env(&[("BATON__TOOLS__FETCH_URL__PROXY", "http://10.0.0.1:8080")]),
    )
    .unwrap();
    assert_eq!(
        config.tools.fetch_url.proxy.as_deref(),
        Some("http://10.0.0.1:8080")
    );
    for bad in [
        "[tools.fetch_url]\nproxyy = \"http://127.0.0.1:3128\"\n",
        "[tools.fetch_urll]\nproxy = \"http://127.0.0.1:3128\"\n",
        "[tools]\nproxy = \"http://127.0.0.1:3128\"\n",
    ] {
        let err = Config::from_toml(bad, env(&[])).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{bad}: {err}");
    }
    let err =
        Config::from_toml("[tools.fetch_url]\nproxy = \"socks5://h:1\"\n", env(&[])).unwrap_err();
    assert!(err.to_string().contains("tools.fetch_url.proxy"), "{err}");
}

#[test]
fn provider_limits_have_defaults_and_are_checked() {
    let provider = "[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n";
    let config = Config::from_toml(provider, env(&[])).unwrap();
    assert_eq!(config.providers["p"].idle_timeout_secs, 60);
    assert_eq!(config.providers["p"].max_response_bytes, 4_000_000);
    assert_eq!(config.engine.turn_deadline_secs, 600);
    for (key, text) in [
        (
            "providers.p.idle_timeout_secs",
            format!("{provider}idle_timeout_secs = 0\n"),
        ),
        (
            "providers.p.max_response_bytes",
            format!("{provider}max_response_bytes = 0\n"),
        ),
        (
            "providers.p.max_concurrency",
            format!("{provider}max_concurrency = 0\n"),
        ),
        (
            "engine.turn_deadline_secs",
            "[engine]\nturn_deadline_secs = 0\n".to_owned(),
        ),
    ] {
        let err = Config::from_toml(&text, env(&[])).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn provider_concurrency_defaults_to_a_handful_on_loopback() {
    let ceiling = |base_url: &str, extra: &str| {
        let text = format!("[providers.p]\nkind = \"openai\"\nbase_url = \"{base_url}\"\n{extra}");
        Config::from_toml(&text, env(&[])).unwrap().providers["p"].max_concurrency()
    };
    assert_eq!(ceiling("https://api.openai.com/v1", ""), 256);
    assert_eq!(ceiling("http://127.0.0.1:11434/v1", ""), 4);
    assert_eq!(ceiling("http://localhost:11434/v1", ""), 4);
    assert_eq!(ceiling("http://[::1]:8000/v1", ""), 4);
    assert_eq!(
        ceiling("http://127.0.0.1:11434/v1", "max_concurrency = 16\n"),
        16
    );
    assert_eq!(Config::default().engine.max_concurrent_model_calls, 512);
}

#[test]
fn a_provider_key_is_read_from_the_variable_list() {
    use secrecy::ExposeSecret;
    let text = "[providers.p]\nkind = \"openai\"\nbase_url = \"http://x/v1\"\n\
                api_key_env = \"BATON_CONFIG_TEST_KEY_7\"\n";
    let config = Config::from_toml(
        text,
        env(&[("BATON_CONFIG_TEST_KEY_7", "sk-from-the-list")]),
    )
    .unwrap();
    let key = config.providers["p"].api_key().unwrap();
    assert_eq!(key.expose_secret(), "sk-from-the-list");
    assert!(!format!("{config:?}").contains("sk-from-the-list"));
    let secrets: Vec<String> = config
        .secrets()
        .iter()
        .map(|secret| secret.expose_secret().to_owned())
        .collect();
    assert!(
        secrets.contains(&"sk-from-the-list".to_owned()),
        "{secrets:?}"
    );
}

#[test]
fn model_refs_split_at_the_first_colon() {
    let model: ModelRef = "ollama:llama3:8b".parse().unwrap();
    assert_eq!(model.provider, "ollama");
    assert_eq!(model.model, "llama3:8b");
    assert_eq!(model.to_string(), "ollama:llama3:8b");
}

#[test]
fn web_search_reads_its_table_its_key_and_overrides() {
    use secrecy::ExposeSecret;
    let config = Config::from_toml(
        "[tools.web_search]\nbackend = \"tavily\"\napi_key_env = \"BATON_TEST_TAVILY\"\n",
        vec![
            ("BATON_TEST_TAVILY".into(), "tvly-secret-123456".into()),
            ("BATON__TOOLS__WEB_SEARCH__MAX_RESULTS".into(), "7".into()),
        ],
    )
    .unwrap();
    let search = config.tools.web_search.as_ref().unwrap();
    assert_eq!(search.max_results, 7);
    let key = search.api_key().unwrap();
    assert_eq!(key.expose_secret(), "tvly-secret-123456");
    assert!(
        config
            .secrets()
            .iter()
            .any(|s| s.expose_secret() == "tvly-secret-123456"),
        "the key is redacted like the others"
    );
    assert!(!format!("{config:?}").contains("tvly-secret"));
    let error = Config::from_toml("[tools.web_search]\nbackend = \"searxng\"\n", vec![])
        .unwrap_err()
        .to_string();
    assert!(error.contains("tools.web_search.base_url"), "{error}");
}

/// `[mcp]` as the config reads it.
mod mcp {
    use super::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml(text, Vec::new()).map_err(|e| e.to_string())
    }

    #[test]
    fn servers_parse_with_defaults() {
        let config = parse(
            r#"
[mcp.servers.files]
command = "mcp-files"
args = ["--root", "/srv"]
env = { LOG = "warn" }

[mcp.servers.search]
url = "https://search.example/mcp"
bearer_token_env = "SEARCH_TOKEN"
enabled = false
"#,
        )
        .unwrap();
        assert_eq!(config.mcp.startup_timeout_secs, 10);
        assert_eq!(config.mcp.call_timeout_secs, 60);
        let enabled: Vec<&str> = config.mcp.enabled_servers().map(|(n, _)| n).collect();
        assert_eq!(enabled, ["files"]);
        assert_eq!(config.mcp.servers["files"].args, ["--root", "/srv"]);
    }

    #[test]
    fn a_server_needs_exactly_one_transport() {
        let both = parse("[mcp.servers.x]\ncommand = \"a\"\nurl = \"http://b\"\n").unwrap_err();
        assert!(
            both.contains("mcp.servers.x") && both.contains("not both"),
            "{both}"
        );
        let neither = parse("[mcp.servers.x]\nargs = [\"a\"]\n").unwrap_err();
        assert!(neither.contains("either command"), "{neither}");
        let mixed = parse("[mcp.servers.x]\nurl = \"http://b\"\nargs = [\"a\"]\n").unwrap_err();
        assert!(mixed.contains("for command servers"), "{mixed}");
        let name = parse("[mcp.servers.\"a b\"]\ncommand = \"a\"\n").unwrap_err();
        assert!(name.contains("letters, digits"), "{name}");
        let timeout = parse("[mcp]\ncall_timeout_secs = 0\n").unwrap_err();
        assert!(timeout.contains("call_timeout_secs"), "{timeout}");
    }
}
