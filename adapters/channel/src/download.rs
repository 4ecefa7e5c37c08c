//! The bounded download of an attachment over HTTP, the part every
//! platform's [`Files`](crate::Files) shares once it knows the file's URL:
//! the size cap (as reported before, from `Content-Length`, and while the
//! body streams in), and what an HTTP status or a network failure means
//! ([`FileError`]: transient or gone). Finding the URL, and which hosts
//! may serve it, stays with the platform. Error texts never carry the URL
//! (Telegram's holds the bot token).

use crate::FileError;

/// `Ok` unless a reported `size` is over `max_bytes`: the check made before
/// anything is downloaded.
pub fn check_size(size: Option<u64>, max_bytes: u64) -> Result<(), FileError> {
    match size {
        Some(size) if size > max_bytes => Err(FileError::TooLarge { limit: max_bytes }),
        _ => Ok(()),
    }
}

/// The body at `url`, at most `max_bytes` of it. A 5xx or 429 and network
/// failures are transient; any other failure status is gone; a larger body
/// is [`FileError::TooLarge`], found before or while it streams in. The
/// caller bounds the time it may take.
pub async fn download_bounded(
    client: &reqwest::Client,
    url: reqwest::Url,
    max_bytes: u64,
) -> Result<Vec<u8>, FileError> {
    let mut response = client.get(url).send().await.map_err(network)?;
    let status = response.status();
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(FileError::Transient(format!("HTTP {status}")));
    }
    if !status.is_success() {
        return Err(FileError::Gone(format!("HTTP {status}")));
    }
    check_size(response.content_length(), max_bytes)?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(network)? {
        append_bounded(&mut body, &chunk, max_bytes)?;
    }
    Ok(body)
}

/// A reqwest failure, without its URL.
fn network(error: reqwest::Error) -> FileError {
    FileError::Transient(error.without_url().to_string())
}

/// Appends `chunk` to `body` unless that makes it longer than `max_bytes`.
fn append_bounded(body: &mut Vec<u8>, chunk: &[u8], max_bytes: u64) -> Result<(), FileError> {
    if (body.len() + chunk.len()) as u64 > max_bytes {
        return Err(FileError::TooLarge { limit: max_bytes });
    }
    body.extend_from_slice(chunk);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot HTTP server on 127.0.0.1:0 that answers every request with
    /// `response` (raw HTTP/1.1) and closes.
    async fn serve(response: &'static str) -> reqwest::Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        reqwest::Url::parse(&format!("http://{addr}/file/secret-token/a.png")).unwrap()
    }

    fn ok(body: &'static str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn a_reported_size_over_the_limit_is_too_large() {
        assert_eq!(check_size(None, 5), Ok(()));
        assert_eq!(check_size(Some(5), 5), Ok(()));
        assert_eq!(
            check_size(Some(6), 5),
            Err(FileError::TooLarge { limit: 5 })
        );
    }

    #[test]
    fn a_download_stops_at_the_limit() {
        let mut body = Vec::new();
        assert!(append_bounded(&mut body, b"abcd", 6).is_ok());
        assert_eq!(
            append_bounded(&mut body, b"efg", 6),
            Err(FileError::TooLarge { limit: 6 })
        );
        assert_eq!(body, b"abcd");
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_downloaded() {
        let url = serve(ok("hello").leak()).await;
        let body = download_bounded(&reqwest::Client::new(), url, 5).await;
        assert_eq!(body, Ok(b"hello".to_vec()));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_too_large() {
        let url = serve(ok("hello world").leak()).await;
        let body = download_bounded(&reqwest::Client::new(), url, 5).await;
        assert_eq!(body, Err(FileError::TooLarge { limit: 5 }));
    }

    #[tokio::test]
    async fn a_streamed_body_over_the_limit_is_too_large() {
        let url = serve(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
        )
        .await;
        let body = download_bounded(&reqwest::Client::new(), url, 8).await;
        assert_eq!(body, Err(FileError::TooLarge { limit: 8 }));
    }

    #[tokio::test]
    async fn statuses_say_whether_to_try_again() {
        let client = reqwest::Client::new();
        for (response, transient) in [
            (
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                true,
            ),
            (
                "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                true,
            ),
            (
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                false,
            ),
        ] {
            let url = serve(response).await;
            let error = download_bounded(&client, url, 5).await.unwrap_err();
            assert_eq!(error.is_transient(), transient, "{response}");
            assert!(matches!(
                error,
                FileError::Transient(_) | FileError::Gone(_)
            ));
        }
    }

    #[tokio::test]
    async fn a_network_failure_is_transient_and_does_not_show_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = reqwest::Url::parse(&format!("http://{addr}/file/secret-token/a.png")).unwrap();
        let error = download_bounded(&reqwest::Client::new(), url, 5)
            .await
            .unwrap_err();
        assert!(error.is_transient());
        assert!(!error.to_string().contains("secret-token"), "{error}");
    }
}
