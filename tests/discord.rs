//! The Discord adapter end to end: the real `baton::app::run` with the real
//! serenity gateway client and Baton's REST talking to a fake Discord, a
//! scripted fake model, and assertions on what Discord was asked to show.

use baton::config::Config;
use baton_discord::inbound::MANAGERS_ONLY;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::dashboard;
use crate::support::bot::test_config;
use crate::support::discord_guild::{CHANNEL_NAME, GUILD_NAME, THREAD_NAME};
use crate::support::fake_discord::{
    APPLICATION_ID, CHANNEL, Call, FakeDiscord, GUILD, MANAGE_GUILD, THREAD,
};
use crate::support::fake_llm::{FakeLlm, FakeReply, SeenRequest, Wire};
use crate::support::service::App;
use crate::telegram::{assert_shown_before_the_summary, default_batch, three_workers};

/// The user in `allowed_users`.
const ADA: u64 = 42;
/// A guild member who is neither allowed nor a manager.
const BOB: u64 = 5;
/// Ada's DM channel with the bot.
const ADA_DM: u64 = 4200;

/// The service's config against `discord` and `llm` with its database in
/// `dir` and no HTTP server; `discord_extra` goes in the `[discord]` table.
fn discord_config(
    discord: &FakeDiscord,
    llm: &FakeLlm,
    dir: &tempfile::TempDir,
    discord_extra: &str,
) -> Config {
    let extra = format!(
        r#"
[server]
enabled = false

[telegram]
enabled = false

[discord]
api_url = "{api}"
allowed_users = [{ADA}]
allowed_guilds = [{GUILD}]
{batch}
{discord_extra}
"#,
        api = discord.api_url(),
        batch = default_batch(discord_extra),
    );
    let mut config: Config = test_config(llm, Wire::OpenAi, &dir.path().join("baton.db"), &extra);
    config.discord.token = Some(SecretString::from("TEST-DISCORD-TOKEN"));
    config
}

/// Starts the service against `discord` and `llm` with its database in
/// `dir`; `discord_extra` goes in the `[discord]` table. Returns once the
/// bot is on the gateway.
pub(crate) async fn start_app(
    discord: &FakeDiscord,
    llm: &FakeLlm,
    dir: &tempfile::TempDir,
    discord_extra: &str,
) -> App {
    let identified = discord.identified();
    let app = App::spawn(discord_config(discord, llm, dir, discord_extra));
    discord.wait_identified(identified).await;
    app
}

/// A fake Discord, a fake model answering with `script`, and a database
/// folder: what a test's bot runs against.
struct World {
    discord: FakeDiscord,
    llm: FakeLlm,
    dir: tempfile::TempDir,
}

impl World {
    async fn new(script: impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static) -> World {
        World {
            discord: FakeDiscord::start().await,
            llm: FakeLlm::start(Wire::OpenAi, script).await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Starts baton on this world; `discord_extra` goes in `[discord]`.
    async fn start(&self, discord_extra: &str) -> App {
        start_app(&self.discord, &self.llm, &self.dir, discord_extra).await
    }
}

fn you_said(request: &SeenRequest) -> FakeReply {
    FakeReply::Text(format!(
        "You said: {}",
        request.last_user_text().unwrap_or("")
    ))
}

/// Calls for interaction `id`, in order (callback, edit, follow-ups).
fn interaction_calls(discord: &FakeDiscord, id: u64) -> Vec<Call> {
    let token = format!("interaction-token-{id}");
    discord
        .calls()
        .into_iter()
        .filter(|c| c.path.contains(&token))
        .collect()
}

/// Waits until interaction `id` has an answer with content, and returns it.
pub(crate) async fn interaction_answer(discord: &FakeDiscord, id: u64) -> String {
    discord
        .wait_until("an answer to the interaction", |fake| {
            interaction_calls(fake, id).iter().any(answer_text_is_set)
        })
        .await;
    interaction_calls(discord, id)
        .iter()
        .find(|c| answer_text_is_set(c))
        .map(|c| answer_content(c).to_owned())
        .unwrap_or_default()
}

fn answer_content(call: &Call) -> &str {
    call.body["data"]["content"]
        .as_str()
        .or(call.body["content"].as_str())
        .unwrap_or_default()
}

fn answer_text_is_set(call: &Call) -> bool {
    call.ok() && !answer_content(call).is_empty()
}

#[tokio::test]
async fn a_mention_in_a_guild_channel_gets_one_reply_and_other_messages_get_silence() {
    let world = World::new(you_said).await;
    let app = world.start(&format!("dev_guild = {GUILD}")).await;
    let World { discord, llm, .. } = &world;

    discord.guild_message(CHANNEL, BOB, "just chatting here", json!({}));
    let mention = discord.mention(CHANNEL, BOB, "what is up?");
    let posts = discord.wait_for_posts(CHANNEL, 1).await;
    // The same MESSAGE_CREATE again is not answered again.
    discord.redispatch_last();
    // A DM from the allowed user is its own conversation.
    discord.dm(ADA_DM, ADA, "hello in private");
    discord.wait_for_posts(ADA_DM, 1).await;
    app.stop().await;

    let posts_now = discord.posted_in(CHANNEL);
    assert_eq!(posts_now.len(), 1, "exactly one reply: {posts_now:#?}");
    assert_eq!(posts[0].content(), "You said: user5: what is up?");
    assert_eq!(
        posts[0].reference(),
        Some(mention),
        "a reply to the mention"
    );
    assert_eq!(posts[0].body["allowed_mentions"]["parse"], json!([]));
    assert_eq!(
        llm.requests().len(),
        2,
        "the unaddressed message and the duplicate reach no model"
    );
    let dm = discord.posted_in(ADA_DM);
    assert_eq!(dm[0].content(), "You said: ada: hello in private");

    // Start-up: the slash commands registered globally and in the dev
    // guild, with their choices; the typing indicator shown during the turn.
    for path in [
        format!("/applications/{APPLICATION_ID}/commands"),
        format!("/applications/{APPLICATION_ID}/guilds/{GUILD}/commands"),
    ] {
        let registered = discord.calls_to("PUT", &path);
        assert_eq!(registered.len(), 1, "{path}");
        let names: Vec<&str> = registered[0]
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "orchestrator",
                "verbose",
                "effort",
                "model",
                "greedy",
                "autonomy",
                "status",
                "stop",
                "reset",
                "help",
                "project"
            ]
        );
        let orchestrator = &registered[0].body[0]["options"][0];
        assert_eq!(orchestrator["name"], "mode");
        assert_eq!(
            orchestrator["choices"],
            json!([
                {"name": "on", "value": "on"}, {"name": "off", "value": "off"}
            ])
        );
    }
    assert!(
        !discord
            .calls_to("POST", &format!("/channels/{CHANNEL}/typing"))
            .is_empty()
    );
}

#[tokio::test]
async fn orchestrator_turns_show_workers_in_a_thread_only_with_verbose_on() {
    let world = World::new(three_workers).await;
    let app = world.start("").await;
    let discord = &world.discord;

    // Slash commands from a member with Manage Server, answered within the
    // deadline by an ephemeral response.
    let switch = discord.slash(
        CHANNEL,
        BOB,
        "orchestrator",
        Some(("mode", "on")),
        MANAGE_GUILD,
    );
    let answer = interaction_answer(discord, switch).await;
    assert!(answer.starts_with("Orchestrator mode on"), "{answer}");
    let calls = interaction_calls(discord, switch);
    assert!(calls[0].path.ends_with("/callback"), "{calls:#?}");
    assert_eq!(calls[0].body["data"]["flags"], 64, "ephemeral");

    let quiet = discord.mention(CHANNEL, BOB, "research alpha, beta and gamma");
    let posts = discord.wait_for_posts(CHANNEL, 1).await;
    assert_eq!(posts[0].content(), "Summary: all three researched.");
    assert_eq!(posts[0].reference(), Some(quiet));
    assert!(
        discord
            .calls_to("POST", "/channels")
            .iter()
            .all(|c| !c.path.ends_with("/threads")),
        "verbose off: no thread"
    );

    let verbose = discord.slash(CHANNEL, BOB, "verbose", Some(("mode", "on")), MANAGE_GUILD);
    interaction_answer(discord, verbose).await;
    let loud = discord.mention(CHANNEL, BOB, "research alpha, beta and gamma again");
    discord.wait_for_posts(CHANNEL, 2).await;
    app.stop().await;

    // Exactly one final reply in the channel per turn.
    let posts = discord.posted_in(CHANNEL);
    assert_eq!(posts.len(), 2, "{posts:#?}");
    assert_eq!(posts[1].reference(), Some(loud));
    // A thread started from the user's message holds the workers' posts.
    let threads = discord.calls_to(
        "POST",
        &format!("/channels/{CHANNEL}/messages/{loud}/threads"),
    );
    assert_eq!(threads.len(), 1, "{threads:#?}");
    let calls = discord.calls();
    let thread_posts: Vec<&Call> = calls
        .iter()
        .filter(|c| c.creates_message() && c.channel().is_some_and(|ch| ch != CHANNEL))
        .collect();
    for label in ["alpha", "beta", "gamma"] {
        let text: Vec<&str> = thread_posts
            .iter()
            .filter(|c| c.content().starts_with(&format!("**[{label}]**")))
            .map(|c| c.content())
            .collect();
        let text = text.join("\n");
        assert!(
            text.contains(&format!("started: research {label}")),
            "{text}"
        );
        assert!(text.contains(&format!("research {label} done")), "{text}");
        assert!(text.contains("finished: done"), "{text}");
    }
    assert!(
        thread_posts.iter().all(|c| c.content().starts_with("**[")),
        "every worker post is labelled"
    );

    // The settings persist: after a restart /status still shows them.
    let app = world.start("").await;
    let status = discord.slash(CHANNEL, BOB, "status", None, 0);
    let answer = interaction_answer(discord, status).await;
    app.stop().await;
    assert!(answer.contains("Mode: orchestrator"), "{answer}");
    assert!(answer.contains("Verbose: on"), "{answer}");
}

#[tokio::test]
async fn a_slow_answer_is_deferred_and_non_managers_are_refused() {
    let world = World::new(you_said).await;
    let app = world.start("defer_after_ms = 0").await;
    let discord = &world.discord;

    let refused = discord.slash(CHANNEL, BOB, "verbose", Some(("mode", "on")), 0);
    assert_eq!(interaction_answer(discord, refused).await, MANAGERS_ONLY);
    let status = discord.slash(CHANNEL, BOB, "status", None, 0);
    let answer = interaction_answer(discord, status).await;
    app.stop().await;

    assert!(answer.contains("Verbose: off"), "{answer}");
    let calls = interaction_calls(discord, status);
    assert_eq!(
        calls[0].body,
        json!({"type": 5, "data": {"flags": 64}}),
        "deferred first"
    );
    assert_eq!(
        calls[1].method, "PATCH",
        "then the deferred response edited"
    );
    assert!(calls[1].path.ends_with("/messages/@original"));
}

/// A long answer with a code block in the middle.
fn long_answer(_: &SeenRequest) -> FakeReply {
    let code: String = (0..60)
        .map(|i| format!("let value_{i} = {i} * 2; // doubling\n"))
        .collect();
    let prose = "This sentence pads the answer out to a good length. ".repeat(35);
    FakeReply::Text(format!("{prose}\n\n```rust\n{code}```\n\n{prose}"))
}

#[tokio::test]
async fn a_long_answer_arrives_in_pieces_under_the_limit_with_fences_intact() {
    let world = World::new(long_answer).await;
    let app = world.start("").await;
    let discord = &world.discord;

    let mention = discord.mention(CHANNEL, ADA, "explain at length");
    discord.wait_for_posts(CHANNEL, 3).await;
    app.stop().await;

    let posts = discord.posted_in(CHANNEL);
    let total: usize = posts.iter().map(|c| c.content().chars().count()).sum();
    assert!(total >= 5000, "{total}");
    assert_eq!(posts.len(), 3, "{posts:#?}");
    for post in &posts {
        assert!(post.content().chars().count() < 2000);
        let fences = post
            .content()
            .lines()
            .filter(|l| l.starts_with("```"))
            .count();
        assert_eq!(fences % 2, 0, "unbalanced fences in {:?}", post.content());
    }
    assert_eq!(posts[0].reference(), Some(mention));
    assert_eq!(
        posts[1].reference(),
        None,
        "only the first piece references"
    );
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_reply_delivered_once_pinging_no_one() {
    let world = World::new(|_: &SeenRequest| {
        FakeReply::Text("@everyone @here <@&123> look at this".into())
    })
    .await;
    let app = world.start("").await;
    let discord = &world.discord;

    discord.rate_limit_next("POST /channels/{id}/messages", 0.3);
    discord.mention(CHANNEL, ADA, "ping everyone");
    discord.wait_for_posts(CHANNEL, 1).await;
    app.stop().await;

    let attempts: Vec<Call> = discord
        .calls()
        .into_iter()
        .filter(|c| c.creates_message() && c.channel() == Some(CHANNEL))
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0].status, 429);
    assert!(attempts[1].ok());
    assert_eq!(
        attempts[0].body, attempts[1].body,
        "the same message, retried"
    );
    assert_eq!(discord.posted_in(CHANNEL).len(), 1, "delivered once");
    let mentions = &attempts[1].body["allowed_mentions"];
    assert_eq!(
        mentions["parse"],
        json!([]),
        "no @everyone, @here or role pings"
    );
    assert!(mentions.get("roles").is_none() && mentions.get("users").is_none());
}

/// Ada switches orchestrator mode and verbose output on in the thread,
/// asks `text` and waits for the summary there; returns her message's id.
pub(crate) async fn loud_turn_in_the_thread(discord: &FakeDiscord, text: &str) -> u64 {
    for (command, mode) in [("orchestrator", "on"), ("verbose", "on")] {
        let id = discord.slash(THREAD, ADA, command, Some(("mode", mode)), 0);
        interaction_answer(discord, id).await;
    }
    let asked = discord.mention(THREAD, ADA, text);
    discord
        .wait_until("the summary in the thread", |fake| {
            fake.posted_in(THREAD)
                .iter()
                .any(|c| c.content().starts_with("Summary"))
        })
        .await;
    asked
}

#[tokio::test]
async fn in_a_thread_worker_output_goes_in_place() {
    let world = World::new(three_workers).await;
    let app = world.start("").await;
    let discord = &world.discord;

    let asked = loud_turn_in_the_thread(discord, "research alpha, beta and gamma").await;
    app.stop().await;

    let posts = discord.posted_in(THREAD);
    let summaries: Vec<&Call> = posts
        .iter()
        .filter(|c| c.content().starts_with("Summary"))
        .collect();
    assert_eq!(summaries.len(), 1, "{posts:#?}");
    let workers: Vec<&Call> = posts
        .iter()
        .filter(|c| c.content().starts_with("**["))
        .collect();
    assert!(!workers.is_empty(), "{posts:#?}");
    assert!(workers.iter().all(|c| c.reference() == Some(asked)));
    let value: Vec<Value> = posts.iter().map(|c| c.body.clone()).collect();
    assert!(
        value
            .iter()
            .all(|b| b["allowed_mentions"]["parse"] == json!([]))
    );
}

#[tokio::test]
async fn worker_output_still_being_collected_is_posted_before_the_reply() {
    let world = World::new(three_workers).await;
    // Batches that would wait ten minutes: only the reply flushes them.
    let app = world.start("verbose_batch_ms = 600000").await;
    let discord = &world.discord;
    loud_turn_in_the_thread(discord, "research alpha, beta and gamma").await;
    app.stop().await;

    let posts = discord.posted_in(THREAD);
    let texts: Vec<&str> = posts.iter().map(|c| c.content()).collect();
    let started = ["alpha", "beta", "gamma"].map(|l| format!("**[{l}]** started: research {l}"));
    assert_shown_before_the_summary(&texts, &started);
}

#[tokio::test]
async fn a_wrong_token_stops_baton_run_with_a_clear_error_that_hides_the_token() {
    let discord = FakeDiscord::start().await;
    let llm = FakeLlm::start(Wire::OpenAi, you_said).await;
    let dir = tempfile::tempdir().unwrap();
    discord.refuse_token();
    let extra = format!(
        "[telegram]\nenabled = false\n[discord]\napi_url = \"{}\"",
        discord.api_url()
    );
    let mut config: Config = test_config(&llm, Wire::OpenAi, &dir.path().join("baton.db"), &extra);
    config.discord.token = Some(SecretString::from("TEST-DISCORD-TOKEN"));
    let error = App::spawn(config)
        .exit()
        .await
        .expect_err("a wrong token is an error");
    let text = error.to_string();
    assert!(
        text.contains("/users/@me") && text.contains("401"),
        "{text}"
    );
    assert!(
        !text.contains("TEST-DISCORD-TOKEN"),
        "the token leaked: {text}"
    );
    assert_eq!(discord.calls().len(), 1, "not retried");
}

#[tokio::test]
async fn after_a_gateway_reconnect_the_session_resumes_and_messages_still_arrive() {
    let world = World::new(you_said).await;
    let app = world.start("").await;
    let discord = &world.discord;

    discord.ask_reconnect();
    discord
        .wait_until("the session to resume", |fake| fake.resumed() >= 1)
        .await;
    let mention = discord.mention(CHANNEL, ADA, "still there?");
    let posts = discord.wait_for_posts(CHANNEL, 1).await;
    app.stop().await;

    assert_eq!(discord.identified(), 1, "resumed, not identified again");
    assert_eq!(posts[0].reference(), Some(mention));
    assert_eq!(posts[0].content(), "You said: ada: still there?");
}

#[tokio::test]
async fn a_reply_whose_create_answer_is_lost_is_retried_and_posted_once() {
    let world = World::new(you_said).await;
    let app = world.start("").await;
    let World { discord, .. } = &world;
    // Discord makes the message, but its answer is a 500: Baton retries.
    discord.lose_next_create_answer(ADA_DM);
    discord.dm(ADA_DM, ADA, "hello");
    discord.wait_for_posts(ADA_DM, 1).await;
    app.stop().await;

    assert_eq!(discord.created_in(ADA_DM), ["You said: ada: hello"]);
    let creates: Vec<Call> = discord
        .calls()
        .into_iter()
        .filter(|c| c.creates_message() && c.channel() == Some(ADA_DM))
        .collect();
    assert_eq!(creates.len(), 2, "{creates:#?}");
    assert_eq!(creates[0].status, 500);
    assert_eq!(creates[0].body["nonce"], creates[1].body["nonce"]);
    assert_eq!(creates[1].body["enforce_nonce"], json!(true));
}

/// Issue 17: the dashboard lists a guild conversation by its guild's and
/// channel's names (a thread by its channel's too), learned from the
/// GUILD_CREATE that follows READY (the bot asks for the GUILDS intent)
/// and from CHANNEL_UPDATE, with no REST call; a DM by its user.
#[tokio::test]
async fn the_dashboard_names_guild_conversations_by_their_channel_and_follows_a_rename() {
    let world = World::new(you_said).await;
    let World { discord, llm, dir } = &world;
    let mut config = discord_config(discord, llm, dir, "");
    config.server.enabled = true;
    config.server.dashboard_token = Some(SecretString::from(dashboard::TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!(
        "http://{}/api/conversations",
        listener.local_addr().unwrap()
    );
    let identified = discord.identified();
    let app = App::spawn_on(config, listener);
    discord.wait_identified(identified).await;
    let client = reqwest::Client::new();
    let listed = |page: &Value| -> Vec<(String, String)> {
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                (text(&c["key"]), text(&c["name"]))
            })
            .collect()
    };
    let key = |channel: u64| format!("discord/{channel}");

    // serenity hands each gateway event to its own task; on the test's
    // one-thread runtime they run in the order they came, so the
    // GUILD_CREATE (and, below, the rename) is known before the message.
    discord.mention(CHANNEL, BOB, "hello");
    discord.wait_for_posts(CHANNEL, 1).await;
    discord.mention(THREAD, BOB, "and in the thread?");
    discord.wait_for_posts(THREAD, 1).await;
    discord.dm(ADA_DM, ADA, "and in private?");
    discord.wait_for_posts(ADA_DM, 1).await;
    let page = dashboard::until(&client, &api, "three conversations", |status, page| {
        status == 200 && page["items"].as_array().is_some_and(|i| i.len() == 3)
    })
    .await;
    let channel_name = format!("{GUILD_NAME} #{CHANNEL_NAME}");
    assert_eq!(
        listed(&page),
        [
            (key(ADA_DM), "ada".to_owned()),
            (key(THREAD), format!("{channel_name} › {THREAD_NAME}")),
            (key(CHANNEL), channel_name),
        ],
        "{page}"
    );

    discord.rename_channel(CHANNEL, "announcements");
    discord.mention(CHANNEL, BOB, "renamed?");
    discord.wait_for_posts(CHANNEL, 2).await;
    discord.mention(THREAD, BOB, "and the thread?");
    discord.wait_for_posts(THREAD, 2).await;
    let page = dashboard::until(&client, &api, "the thread listed first", |_, page| {
        page["items"][0]["key"] == json!(key(THREAD))
    })
    .await;
    app.stop().await;

    let renamed = format!("{GUILD_NAME} #announcements");
    assert_eq!(
        listed(&page),
        [
            (key(THREAD), format!("{renamed} › {THREAD_NAME}")),
            (key(CHANNEL), renamed),
            (key(ADA_DM), "ada".to_owned()),
        ],
        "{page}"
    );
}
