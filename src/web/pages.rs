//! The dashboard's pages, rendered on the server: the conversation list
//! (`/`), one conversation's turns and projects (`/conversation?key=`),
//! a turn's tree (`/turn/{id}`) and the live message bus (`/live`, fed by
//! `/api/events/stream`). Text is escaped here; long text folds
//! (`<details>`); times go out as unix ms and `assets/app.js` shows them in
//! the viewer's local time. The CSS and JS are compiled into the binary.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::Web;
use super::api::{Params, today_start};
use crate::store::{TurnRow, WorkerRow};

const CSS: &str = include_str!("assets/style.css");
const JS: &str = include_str!("assets/app.js");

/// Text longer than this folds.
const FOLD: usize = 240;

/// `/assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (kind, body) = match name.as_str() {
        "style.css" => ("text/css; charset=utf-8", CSS),
        "app.js" => ("text/javascript; charset=utf-8", JS),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// HTML-escapes `text`.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
fn enc(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A whole page around `body`.
pub fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Baton</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\
         <body><nav><a href=\"/\">Conversations</a> <a href=\"/live\">Live</a></nav>\
         <main>{body}</main><script src=\"/assets/app.js\"></script></body></html>",
        esc(title)
    )
}

fn time(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => format!("<time data-ms=\"{ms}\">{ms}</time>"),
        None => "—".to_owned(),
    }
}

/// Text, folded when long.
fn fold(text: &str) -> String {
    if text.chars().count() <= FOLD {
        return format!("<div class=\"text\">{}</div>", esc(text));
    }
    let head: String = text.chars().take(120).collect();
    format!(
        "<details><summary>{}…</summary><div class=\"text\">{}</div></details>",
        esc(&head),
        esc(text)
    )
}

fn trouble(what: &str) -> Response {
    let body = layout("Error", &format!("<p class=\"error\">{}</p>", esc(what)));
    (StatusCode::SERVICE_UNAVAILABLE, Html(body)).into_response()
}

/// `/`: the conversations.
pub async fn conversations(State(web): State<Arc<Web>>, Query(p): Query<Params>) -> Response {
    let store = &web.services.store;
    let rows = match store
        .browse_conversations(p.cursor, 100, today_start())
        .await
    {
        Ok(rows) => rows,
        Err(_) => return trouble("The store could not answer."),
    };
    let mut body = String::from(
        "<h1>Conversations</h1><table class=\"list\"><thead><tr><th>Conversation</th><th>Mode</th>\
         <th>Verbose</th><th>Last activity</th><th>Turns today</th><th>Tokens today (cached)</th>\
         <th>Cost today</th></tr></thead><tbody>",
    );
    let since = today_start();
    for row in &rows {
        let cost = match row.key.parse::<baton_channel::ConversationKey>() {
            Ok(key) => match store.usage_by_model_since(Some(&key), since).await {
                Ok(parts) => crate::budget::Spend::of(&parts, &web.services.config.models).usd,
                Err(_) => 0.0,
            },
            Err(_) => 0.0,
        };
        let _ = write!(
            body,
            "<tr><td><a href=\"/conversation?key={}\">{}</a><small>{} {}</small></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>${cost:.4}</td></tr>",
            enc(&row.key),
            esc(row.name.as_deref().unwrap_or(&row.key)),
            esc(&row.platform),
            esc(&row.key),
            esc(row.mode.as_deref().unwrap_or("default")),
            match row.verbose {
                Some(true) => "on",
                Some(false) => "off",
                None => "default",
            },
            time(row.last_activity),
            row.turns_today,
            row.tokens_today,
            row.cached_tokens_today,
        );
    }
    body.push_str("</tbody></table>");
    if rows.len() >= 100
        && let Some(last) = rows.last()
    {
        let _ = write!(
            body,
            "<p><a href=\"/?cursor={}\">More</a></p>",
            enc(&last.cursor)
        );
    }
    Html(layout("Conversations", &body)).into_response()
}

fn turn_line(turn: &TurnRow) -> String {
    format!(
        "<tr><td><a href=\"/turn/{id}\">#{id}</a></td><td>{}</td><td>{}</td>\
         <td class=\"status {s}\">{s}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        time(Some(turn.started_at)),
        esc(&turn.mode),
        fold(turn.message.as_deref().unwrap_or("")),
        fold(
            turn.reply
                .as_deref()
                .or(turn.error.as_deref())
                .unwrap_or("")
        ),
        tokens(
            turn.input_tokens,
            turn.output_tokens,
            turn.cached_input_tokens
        ),
        id = turn.id,
        s = esc(&turn.status),
    )
}

/// `/conversation?key=KEY`: its recent turns and its projects.
pub async fn conversation(State(web): State<Arc<Web>>, Query(p): Query<Params>) -> Response {
    let Some(key) = p.key.or(p.conversation) else {
        return trouble("Which conversation? (key= is missing)");
    };
    let store = &web.services.store;
    let turns = match store.browse_turns(&key, None, 50).await {
        Ok(turns) => turns,
        Err(_) => return trouble("The store could not answer."),
    };
    let projects = store
        .browse_projects(Some(key.clone()), None, 20)
        .await
        .unwrap_or_default();
    let mut body = format!(
        "<h1>{}</h1><p><a href=\"/live?conversation={}\">Live view</a></p><h2>Turns</h2>\
         <table class=\"list\"><thead><tr><th>Turn</th><th>Started</th><th>Mode</th>\
         <th>Status</th><th>Message</th><th>Reply</th><th>Tokens</th></tr></thead><tbody>",
        esc(&key),
        enc(&key)
    );
    for turn in &turns {
        body.push_str(&turn_line(turn));
    }
    body.push_str("</tbody></table>");
    if !projects.is_empty() {
        body.push_str("<h2>Projects</h2><ul class=\"projects\">");
        for project in &projects {
            let _ = write!(
                body,
                "<li><a href=\"/turn/{}\">#{}</a> <span class=\"status {s}\">{s}</span> {} {}</li>",
                project.turn,
                project.id,
                time(Some(project.created_at)),
                fold(&project.goal),
                s = esc(&project.status),
            );
        }
        body.push_str("</ul>");
    }
    Html(layout(&key, &body)).into_response()
}

/// A token count as the pages show it: all of them, and the cached ones.
fn tokens(input: i64, output: i64, cached: i64) -> String {
    format!("{} tokens ({cached} cached)", input + output)
}

/// What `usage` on `model` cost at the catalog's prices.
fn cost(web: &Web, model: &str, usage: crate::domain::Usage) -> f64 {
    model
        .parse::<crate::domain::ModelRef>()
        .ok()
        .map(|m| web.services.config.models.spec(&m).cost(usage))
        .unwrap_or(0.0)
}

/// A stored row's four token counts as a [`crate::domain::Usage`].
fn usage(input: i64, output: i64, cached: i64, written: i64) -> crate::domain::Usage {
    let tokens = |n: i64| u64::try_from(n).unwrap_or(0);
    crate::domain::Usage {
        input_tokens: tokens(input),
        output_tokens: tokens(output),
        cached_input_tokens: tokens(cached),
        cache_write_tokens: tokens(written),
    }
}

fn worker_card(worker: &WorkerRow, web: &Web, calls: &[String]) -> String {
    let used = usage(
        worker.input_tokens,
        worker.output_tokens,
        worker.cached_input_tokens,
        worker.cache_write_tokens,
    );
    let cost = cost(web, &worker.model, used);
    let elapsed = (worker.updated_at - worker.created_at).max(0) as f64 / 1000.0;
    let mut tools = String::new();
    for call in calls {
        let _ = write!(tools, "<li>{}</li>", fold(call));
    }
    format!(
        "<section class=\"worker\" data-worker=\"{id}\" data-status=\"{s}\"><h3>{id} · {label} \
         <span class=\"status {s}\">{s}</span></h3><p><small>{model} · effort {effort} · \
         {tokens} · ${cost:.4} · {elapsed:.1} s</small></p><h4>Brief</h4>{brief}\
         <h4>Tool calls</h4><ul>{tools}</ul><h4>Result</h4>{result}</section>",
        id = esc(&worker.worker_id),
        label = esc(&worker.label),
        s = esc(&worker.status),
        model = esc(&worker.model),
        effort = esc(&worker.effort),
        tokens = tokens(
            worker.input_tokens,
            worker.output_tokens,
            worker.cached_input_tokens
        ),
        brief = fold(&worker.brief),
        result = fold(
            worker
                .result
                .as_deref()
                .or(worker.error.as_deref())
                .unwrap_or("")
        ),
    )
}

/// `/turn/{id}`: the whole tree of one turn.
pub async fn turn(State(web): State<Arc<Web>>, Path(id): Path<i64>) -> Response {
    let tree = match web.services.store.browse_turn(id).await {
        Ok(Some(tree)) => tree,
        Ok(None) => {
            let body = layout("No such turn", "<p>No such turn.</p>");
            return (StatusCode::NOT_FOUND, Html(body)).into_response();
        }
        Err(_) => return trouble("The store could not answer."),
    };
    let turn = &tree.turn;
    let mut body = format!(
        "<h1>Turn #{}</h1><p><a href=\"/conversation?key={}\">{}</a> · {} · {} · \
         <span class=\"status {s}\" id=\"turn-status\">{s}</span> · orchestrator {} · ${:.4}</p>\
         <h2>Message</h2>{}<section class=\"tree\" id=\"tree\"><h2>Orchestrator</h2><ul class=\"rounds\">",
        turn.id,
        enc(&turn.conversation),
        esc(&turn.conversation),
        time(Some(turn.started_at)),
        esc(&turn.model),
        tokens(
            turn.input_tokens,
            turn.output_tokens,
            turn.cached_input_tokens
        ),
        cost(
            &web,
            &turn.model,
            usage(
                turn.input_tokens,
                turn.output_tokens,
                turn.cached_input_tokens,
                turn.cache_write_tokens
            )
        ),
        fold(turn.message.as_deref().unwrap_or("")),
        s = esc(&turn.status),
    );
    // The orchestrator's own entries: delegations and what it logged.
    for event in tree
        .events
        .iter()
        .filter(|e| e.kind == "delegation" || e.source == "orchestrator")
    {
        let _ = write!(
            body,
            "<li><b>{}</b> {} {}</li>",
            esc(&event.kind),
            esc(&event.source),
            fold(&event.body)
        );
    }
    body.push_str("</ul><h2>Workers</h2>");
    for worker in &tree.workers {
        let calls: Vec<String> = tree
            .events
            .iter()
            .filter(|e| e.source == worker.worker_id && e.kind == "progress")
            .map(|e| e.body.clone())
            .collect();
        body.push_str(&worker_card(worker, &web, &calls));
    }
    let _ = write!(
        body,
        "</section><h2>Reply</h2><div id=\"reply\">{}</div>",
        fold(
            turn.reply
                .as_deref()
                .or(turn.error.as_deref())
                .unwrap_or("(none yet)")
        )
    );
    Html(layout(&format!("Turn #{}", turn.id), &body)).into_response()
}

/// `/live?conversation=KEY`: the message bus as it happens.
pub async fn live(State(web): State<Arc<Web>>, Query(p): Query<Params>) -> Response {
    let after = web
        .services
        .store
        .last_event_id()
        .await
        .unwrap_or(0)
        .saturating_sub(50)
        .max(0);
    let conversation = p.conversation.unwrap_or_default();
    let body = format!(
        "<h1>Live</h1><form class=\"filter\"><label>Conversation \
         <input name=\"conversation\" value=\"{}\" placeholder=\"all\"></label> \
         <button>Filter</button></form><p id=\"state\">connecting…</p>\
         <h2>Workers</h2><div id=\"workers\" class=\"workers\"></div>\
         <h2>Message bus</h2><ol id=\"events\" class=\"events\" data-after=\"{after}\" \
         data-conversation=\"{}\"></ol>",
        esc(&conversation),
        esc(&conversation),
    );
    Html(layout("Live", &body)).into_response()
}
