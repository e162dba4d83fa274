//! A message's `html`: its text rendered as Markdown (CommonMark with strikethrough), the way
//! Stream fills the field (`"hello"` → `"<p>hello</p>\n"`). Nothing a user types becomes markup
//! of its own: raw HTML shows as text, and links keep only web, mail and relative targets.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

/// Link targets kept as they are; any other scheme (`javascript:`, `data:`…) becomes `#`.
fn safe_target(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    match lower.find(':') {
        None => true,
        Some(colon) => {
            // A colon after a path or query character is not a scheme.
            lower[..colon].contains(['/', '?', '#'])
                || ["http", "https", "mailto"].contains(&&lower[..colon])
        }
    }
}

/// The `html` of a message whose text is `text` (empty text, empty html).
pub fn render(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let parser = Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_target(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: CowStr::Borrowed("#"),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_target(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: CowStr::Borrowed("#"),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::with_capacity(text.len() + 16);
    pulldown_cmark::html::push_html(&mut html, parser);
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_renders_as_stream_fills_html() {
        assert_eq!(render("hello"), "<p>hello</p>\n");
        assert_eq!(render(""), "");
        assert_eq!(
            render("**bold** and _it_ ~~gone~~"),
            "<p><strong>bold</strong> and <em>it</em> <del>gone</del></p>\n"
        );
        assert_eq!(
            render("[site](https://example.com)"),
            "<p><a href=\"https://example.com\">site</a></p>\n"
        );
    }

    #[test]
    fn nothing_typed_becomes_markup() {
        // An HTML block stays a block, as text.
        assert_eq!(
            render("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            render("hi <b onclick=x>there</b>"),
            "<p>hi &lt;b onclick=x&gt;there&lt;/b&gt;</p>\n"
        );
        assert_eq!(
            render("[x](javascript:alert(1))"),
            "<p><a href=\"#\">x</a></p>\n"
        );
        assert_eq!(
            render("![i](data:image/png;base64,AA)"),
            "<p><img src=\"#\" alt=\"i\" /></p>\n"
        );
        assert_eq!(
            render("[ok](/path?a=b:c)"),
            "<p><a href=\"/path?a=b:c\">ok</a></p>\n"
        );
        assert_eq!(
            render("[m](mailto:a@b.c)"),
            "<p><a href=\"mailto:a@b.c\">m</a></p>\n"
        );
    }
}
