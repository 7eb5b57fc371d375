//! Markdown → HTML for model replies, safe to put into `innerHTML`.
//!
//! Model output is untrusted: raw HTML (block or inline) is shown as escaped text, and links or
//! images whose URL is not http(s), mailto, a relative path or a fragment (`javascript:`,
//! `data:`, `vbscript:`, …) are dropped — their text stays, the link goes. The links that stay
//! open in a new tab (`target="_blank" rel="noopener noreferrer"`): a click never takes the app's
//! own tab away from the conversation, and the new page gets no handle on this one.
//!
//! While a reply streams, [`Streaming`] renders each finished block once and re-renders only the
//! last, open one, so a reply costs linear rather than quadratic time in its length.

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

/// Attributes every link gets.
const LINK_OPEN: &str = r#"<a target="_blank" rel="noopener noreferrer" href=""#;

/// Render `text` as HTML with raw HTML escaped, unsafe links removed, and links opening in a new
/// tab.
pub fn to_safe_html(text: &str) -> String {
    // Every `<a href="` in the output was written by the renderer: the model's own markup is
    // text by now (escaped), so this cannot touch anything the model wrote.
    render(text).replace(r#"<a href=""#, LINK_OPEN)
}

fn render(text: &str) -> String {
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

/// Markdown of a reply that is still growing, rendered block by block: the blocks before the
/// last one are finished (a later block has started, so nothing that follows can change them)
/// and rendered once; the last one is rendered again on each update. The final text should be
/// rendered whole with [`to_safe_html`] (a few constructs span blocks: loose lists, reference
/// links defined further down).
#[derive(Clone, Debug, Default)]
pub struct Streaming {
    /// `text[..done]` is rendered into `done_html`.
    done: usize,
    done_html: String,
    /// The text seen last (to notice a reply that was replaced rather than extended).
    seen: String,
}

impl Streaming {
    /// Render `text` (the reply so far): `(finished blocks, the open block)`, both safe HTML.
    pub fn update(&mut self, text: &str) -> (&str, String) {
        if !text.starts_with(self.seen.as_str()) {
            *self = Self::default();
        }
        self.seen.clear();
        self.seen.push_str(text);
        let tail = &text[self.done..];
        if let Some(last) = last_block_start(tail).filter(|&at| at > 0) {
            self.done_html.push_str(&to_safe_html(&tail[..last]));
            self.done += last;
        }
        (&self.done_html, to_safe_html(&text[self.done..]))
    }
}

/// Byte offset in `text` (a line start) where its last top-level block starts after a blank
/// line; `None` when there is none. Only a blank line closes a block for good: without one, the
/// next lines may still join it (a table's rows, a paragraph's setext underline, a list item's
/// lazy continuation), however the parser sees them so far.
fn last_block_start(text: &str) -> Option<usize> {
    let opts = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    let mut depth = 0usize;
    let mut last = None;
    let mut consider = |at: usize| {
        // From the start of its line: an indented code block's range starts after the indent.
        let line = text[..at].rfind('\n').map_or(0, |nl| nl + 1);
        if after_blank_line(text, line) {
            last = Some(line);
        }
    };
    for (ev, range) in Parser::new_ext(text, opts).into_offset_iter() {
        match ev {
            Event::Start(_) => {
                if depth == 0 {
                    consider(range.start);
                }
                depth += 1;
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            // A block that is a single event (a rule, raw HTML shown as text).
            _ if depth == 0 => consider(range.start),
            _ => {}
        }
    }
    last
}

/// Whether the line before the one starting at `line` is blank (whitespace only).
fn after_blank_line(text: &str, line: usize) -> bool {
    let Some(before) = text[..line].strip_suffix('\n') else {
        return false;
    };
    let prev = &before[before.rfind('\n').map_or(0, |nl| nl + 1)..];
    prev.trim().is_empty()
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
        assert_eq!(h.matches(LINK_OPEN).count(), 3, "{h}");
    }

    #[test]
    fn images_become_links_or_text() {
        let h = to_safe_html("![alt](https://example.com/x.png) ![bad](javascript:x)");
        assert!(!h.contains("<img"), "{h}");
        assert!(
            h.contains(r#"<a target="_blank" rel="noopener noreferrer" href="https://example.com/x.png">alt</a>"#),
            "{h}"
        );
        assert!(h.contains("bad") && h.matches("<a").count() == 1, "{h}");
    }

    #[test]
    fn links_open_in_a_new_tab() {
        let h = to_safe_html(
            "[a](https://example.com \"t\") <https://auto.example> <me@example.com> \
             [ref]\n\n[ref]: https://ref.example",
        );
        assert_eq!(h.matches("<a ").count(), 4, "{h}");
        assert_eq!(h.matches(LINK_OPEN).count(), 4, "{h}");
        // The model's own anchors stay text.
        let h = to_safe_html(r#"<a href="https://x.example" target="_self">x</a>"#);
        assert!(!h.contains("<a "), "{h}");
    }

    /// Feed `text` as a stream, `step` bytes at a time (on char boundaries); returns what the
    /// page would show after each update.
    fn stream(text: &str, step: usize) -> Vec<String> {
        let mut s = Streaming::default();
        let mut shown = Vec::new();
        let mut end = 0;
        while end < text.len() {
            end = (end + step).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            let (done, open) = s.update(&text[..end]);
            shown.push(format!("{done}{open}"));
        }
        shown
    }

    #[test]
    fn streaming_renders_like_the_whole() {
        let docs = [
            "# Title\n\nA paragraph with **bold**.\n\n```rust\nfn main() {\n\n    x();\n}\n```\n\nThe end.",
            "Intro:\n\n- one\n- two\n\n1. a\n2. b\n\n> quoted\n> more\n\n---\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
            "Some `code` and [a link](https://example.com).\n\nUnicode: héllo 🌍 end",
            "Text\n\n    indented code\n    more\n\nAfter.",
            "Head\n---\nPara\n| x | y |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\n- a\nlazy\n- b\n\nEnd",
        ];
        for doc in docs {
            for step in [1, 3, 17] {
                let shown = stream(doc, step);
                assert_eq!(
                    shown.last().unwrap(),
                    &to_safe_html(doc),
                    "step {step}: {doc:?}"
                );
            }
        }
    }

    #[test]
    fn streaming_renders_finished_blocks_once() {
        let mut s = Streaming::default();
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!("Paragraph {i} with some words.\n\n"));
            s.update(&text);
        }
        // Only the last paragraph is open.
        assert!(
            text.len() - s.done < 40,
            "{} of {} bytes open",
            text.len() - s.done,
            text.len()
        );
        // A replaced reply starts over.
        let (done, open) = s.update("New reply");
        assert_eq!(done, "");
        assert_eq!(open, "<p>New reply</p>\n");
    }

    #[test]
    fn streaming_stays_safe() {
        let doc = "ok\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror=alert(1)>\n\n```\n<b>\n```";
        for step in [1, 2, 5] {
            for shown in stream(doc, step) {
                assert!(
                    !shown.contains("<script") && !shown.contains("<img") && !shown.contains("<b>"),
                    "{shown}"
                );
                assert!(!shown.contains("javascript:alert(1)\""), "{shown}");
            }
        }
    }

    #[test]
    fn escape_text() {
        assert_eq!(
            escape("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
