//! Markdown → HTML for model replies, safe to put into `innerHTML`.
//!
//! Model output is untrusted: raw HTML (block or inline) is shown as escaped text, and links or
//! images whose URL is not http(s), mailto, a relative path or a fragment (`javascript:`,
//! `data:`, `vbscript:`, …) are dropped — their text stays, the link goes.

use pulldown_cmark::{html, Event, Options, Parser, Tag, TagEnd};

/// Whether a link/image destination may be kept.
pub fn safe_url(url: &str) -> bool {
    // Browsers ignore ASCII whitespace and control characters inside a scheme ("java\tscript:").
    let cleaned: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
        .collect::<String>()
        .to_ascii_lowercase();
    match cleaned.find(':') {
        None => true, // relative path or fragment
        Some(colon) => {
            // A ':' after '/', '?' or '#' is not a scheme separator.
            if cleaned[..colon].contains(['/', '?', '#']) {
                return true;
            }
            matches!(&cleaned[..colon], "http" | "https" | "mailto")
        }
    }
}

/// Render `text` as HTML with raw HTML escaped and unsafe links removed.
pub fn to_safe_html(text: &str) -> String {
    let opts = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    // Nesting depth of dropped links/images whose closing tag must be dropped too.
    let mut dropped: Vec<bool> = Vec::new();
    let events = Parser::new_ext(text, opts).filter_map(|ev| match ev {
        Event::Html(s) | Event::InlineHtml(s) => Some(Event::Text(s)),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let ok = safe_url(&dest_url);
            dropped.push(!ok);
            ok.then_some(Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }))
        }
        Event::End(TagEnd::Link) => match dropped.pop() {
            Some(true) => None,
            _ => Some(Event::End(TagEnd::Link)),
        },
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            // Images would make the page fetch a URL the model chose: show the alt text instead,
            // as a link when the URL is safe.
            let ok = safe_url(&dest_url);
            dropped.push(!ok);
            ok.then_some(Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }))
        }
        Event::End(TagEnd::Image) => match dropped.pop() {
            Some(true) => None,
            _ => Some(Event::End(TagEnd::Link)),
        },
        other => Some(other),
    });
    let mut out = String::with_capacity(text.len() * 3 / 2 + 16);
    html::push_html(&mut out, events);
    out
}

/// Plain text escaped for HTML (used for the user's own messages, which are not Markdown).
pub fn escape(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_markdown() {
        let h = to_safe_html("**bold** and `code`\n\n- a\n- b");
        assert!(h.contains("<strong>bold</strong>"));
        assert!(h.contains("<code>code</code>"));
        assert!(h.contains("<li>a</li>"));
    }

    #[test]
    fn raw_html_is_escaped() {
        let h = to_safe_html("<script>alert(1)</script>\n\nhi <img src=x onerror=alert(1)> there");
        assert!(!h.contains("<script"), "{h}");
        assert!(!h.contains("<img"), "{h}");
        assert!(h.contains("&lt;script&gt;"), "{h}");
        assert!(h.contains("&lt;img src=x onerror=alert(1)&gt;"), "{h}");
    }

    #[test]
    fn javascript_links_are_dropped() {
        for url in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox",
        ] {
            let h = to_safe_html(&format!("[click]({url})"));
            assert!(!h.contains("<a"), "{url}: {h}");
            assert!(h.contains("click"), "{url}: {h}");
        }
        let h = to_safe_html("[ok](https://example.com/a?b=c:d) [rel](docs/x.md) [frag](#top)");
        assert_eq!(h.matches("<a href").count(), 3, "{h}");
    }

    #[test]
    fn images_become_links_or_text() {
        let h = to_safe_html("![alt](https://example.com/x.png) ![bad](javascript:x)");
        assert!(!h.contains("<img"), "{h}");
        assert!(
            h.contains(r#"<a href="https://example.com/x.png">alt</a>"#),
            "{h}"
        );
        assert!(h.contains("bad") && h.matches("<a").count() == 1, "{h}");
    }

    #[test]
    fn escape_text() {
        assert_eq!(
            escape("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
