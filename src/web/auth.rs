//! The dashboard's access check: a bearer token (`Authorization: Bearer
//! ...`) or the `baton_dashboard` cookie, compared with the configured
//! token in constant time (the time depends only on the configured
//! token's length). Pages without either get the login form, which asks
//! once and sets the cookie (`Secure; HttpOnly; SameSite=Strict`); the API
//! gets 401.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::Web;

/// The cookie that keeps the token after the login form.
const COOKIE: &str = "baton_dashboard";

/// Whether `given` is `expected`, in time that depends only on `expected`'s length.
fn same(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = 0u8;
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(!e) ^ e;
    }
    let lengths = (given.len() as u64).ct_eq(&(expected.len() as u64));
    bool::from(lengths & diff.ct_eq(&0))
}

/// The token a request carries, if any.
fn carried(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn allowed(web: &Web, given: Option<&str>) -> bool {
    let Some(token) = &web.token else {
        return false;
    };
    // Compared even when nothing was given, so both take the same time.
    let ok = same(
        given.unwrap_or("").as_bytes(),
        token.expose_secret().as_bytes(),
    );
    ok && given.is_some()
}

/// Lets a request with the right token through; else 401 (pages: with the
/// login form).
pub async fn require(State(web): State<Arc<Web>>, request: Request, next: Next) -> Response {
    let given = carried(request.headers());
    if allowed(&web, given.as_deref()) {
        return next.run(request).await;
    }
    if request.uri().path().starts_with("/api/") {
        let body = axum::Json(serde_json::json!({ "error": "a valid dashboard token is needed" }));
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    let back = request.uri().to_string();
    (
        StatusCode::UNAUTHORIZED,
        Html(login_page(&back, given.is_some())),
    )
        .into_response()
}

/// The login form's fields.
#[derive(serde::Deserialize)]
pub struct Login {
    token: String,
    #[serde(default)]
    back: String,
}

/// Checks the form's token; a right one sets the cookie and goes back.
pub async fn login(State(web): State<Arc<Web>>, Form(form): Form<Login>) -> Response {
    if !allowed(&web, Some(form.token.trim())) {
        return (StatusCode::UNAUTHORIZED, Html(login_page(&form.back, true))).into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict",
        form.token.trim()
    );
    let back = if form.back.starts_with('/') && !form.back.starts_with("//") {
        form.back
    } else {
        "/".to_owned()
    };
    let mut response = Redirect::to(&back).into_response();
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
            response
        }
        Err(_) => (
            StatusCode::BAD_REQUEST,
            "the token cannot be kept in a cookie",
        )
            .into_response(),
    }
}

fn login_page(back: &str, wrong: bool) -> String {
    let note = if wrong {
        "<p class=\"error\">That token is not right.</p>"
    } else {
        ""
    };
    super::pages::layout(
        "Sign in",
        &format!(
            "<h1>Baton</h1>{note}<form method=\"post\" action=\"/login\" class=\"login\">\
             <label>Dashboard token <input type=\"password\" name=\"token\" id=\"token\" autofocus required></label>\
             <input type=\"hidden\" name=\"back\" value=\"{}\">\
             <button type=\"submit\" id=\"sign-in\">Sign in</button></form>",
            super::pages::esc(back)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secreT", b"secret"));
        assert!(!same(b"secret1", b"secret"));
        assert!(!same(b"secre", b"secret"));
        assert!(!same(b"", b"secret"));
    }
}
